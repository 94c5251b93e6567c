"""Card protocols: APDUs, status words, one session class per card type."""
