"""Text certwiz writes for a client certificate's owner (package data)."""
