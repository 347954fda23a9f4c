from datawharf.cli import main

main()
