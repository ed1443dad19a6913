from herald.cli import main

main(prog_name="herald")
