"""`python -m ytmaker_gateway`: serve the gateway (settings from YTMAKER_* variables)."""

from ytmaker_gateway.main import main

if __name__ == "__main__":
    main()
