from ytmaker_upload.main import main

if __name__ == "__main__":
    main()
