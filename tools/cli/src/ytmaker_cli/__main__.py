from ytmaker_cli.main import main

main()
