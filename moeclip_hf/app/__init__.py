"""The web app: `moeclip serve` on the installed package, and the Space app of an exported repository."""
