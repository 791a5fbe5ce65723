"""fairrobust: for whom do ML security defenses defend?

Parity metrics for adversarial training, noise augmentation, preprocessing
defenses, randomized smoothing and neural rejection on speech models, in JAX
(Richards, Raff & Matuszek, AISec '23).

The public API is ONE explicit list: the imports of ``__init__.pyi`` beside this
file (``from .attacks import pgd as pgd``, ...). Type checkers read it as the
package's interface; at run time ``lazy_loader`` resolves each name on first
access from that same list, so ``import fairrobust`` (and ``fairrobust --help``)
does not import JAX until a name is used. ``fairrobust.__all__`` is that list.
"""

import lazy_loader as _lazy

from fairrobust._version import __version__ as __version__

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
