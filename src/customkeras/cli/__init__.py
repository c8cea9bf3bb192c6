"""(being written)"""
def main(argv=None):
    raise SystemExit("customkeras CLI: being written")
