from searchlearn.cli.main import main

main()
