"""Shared by the Python integration scripts: PASS/FAIL counting and relative comparison."""


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS %s" % name)
        else:
            self.failed += 1
            print("FAIL %s%s" % (name, ": " + detail if detail else ""))
        return ok


def close(a, b, rel):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-30)
