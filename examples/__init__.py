"""Examples and demo helpers; the tests import the stack helpers from here."""
