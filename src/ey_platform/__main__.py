from ey_platform.cli import main

main()
