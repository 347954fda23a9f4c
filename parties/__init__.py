"""The party node: runs beside a holder's data and answers tasks under its policy."""
