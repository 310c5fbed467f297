from ytmaker_render.main import main

if __name__ == "__main__":
    main()
