"""The report stage's parts: the results table (results), the paper's claims as data (claims),
every plot of the platform (plots) and the README's generated results section (readme)."""
