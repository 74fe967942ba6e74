from chatserver.manage import main

main()
