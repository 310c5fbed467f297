from ytmaker_assets.main import main

if __name__ == "__main__":
    main()
