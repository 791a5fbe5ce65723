"""fairrobust: for whom do ML security defenses defend?"""

__version__ = "0.1.0"
