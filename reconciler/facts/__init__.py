"""Facts: each probe is the command it needs (or an in-process read) plus a pure parser."""
