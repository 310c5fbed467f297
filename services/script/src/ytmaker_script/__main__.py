from ytmaker_script.main import main

if __name__ == "__main__":
    main()
