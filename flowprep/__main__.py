from flowprep.cli import main

main()
