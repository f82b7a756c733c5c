from recscale.cli import main

main()
