"""Argument rules as data: the one validation layer of every mmcsn module.

Every registered mmcsn class (models, transforms, hooks) states the rules of
its constructor arguments as a table and decorates ``__init__`` with it::

    @ArgSpec('TAMNeck',
             in_channels=Int(min=1),
             collapse=Str(choices=('mean', 'max')),
             init_cfg=InitCfg())
    def __init__(self, in_channels, collapse='mean', init_cfg=None): ...

Before the body runs, each argument is checked (and normalised: a list from
a config becomes a tuple), then the cross-argument ``checks`` run. The
rule for the exception type is the same everywhere:

* ``TypeError``: the value has the wrong type. A bool is not an int, an
  int is not a float or a bool, a str is not a sequence.
* ``ValueError``: the type is right, the value is not: out of range, not
  one of the choices, wrong length, inconsistent with another argument.

Every message reads ``<Owner>: <argument> must be <what is valid>, got
<value>``. The decorator refuses, at import time, an ``__init__`` whose
parameters and rules differ, so a new argument cannot arrive without one.

This module sits below every other mmcsn layer and imports nothing from
mmcsn: ``mmcsn.models``, ``mmcsn.datasets`` and ``mmcsn.engine`` all use it,
and ``mmcsn.utils`` (above ``mmcsn.models``) imports model code.
"""
import functools
import inspect
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

__all__ = [
    'ArgSpec', 'Rule', 'Bool', 'Int', 'Float', 'Str', 'Seq', 'Either',
    'Maybe', 'Cfg', 'InitCfg', 'Ref', 'fail', 'check_arg'
]

Args = Dict[str, Any]


def _got(value: Any) -> str:
    """``2.0 (float)``: the value and, when it can mislead, its type."""
    if isinstance(value, (bool, int, str, list, tuple, dict)) or \
            value is None:
        return repr(value)
    return f'{value!r} ({type(value).__name__})'


def fail(owner: str,
         name: str,
         value: Any,
         expected: str,
         error: type = ValueError) -> Exception:
    """The error of a bad argument: ``<owner>: <name> must be <expected>``.

    Args:
        owner (str): The class (or function) the argument belongs to.
        name (str): The argument, e.g. ``'out_indices'`` or ``'inflate[1]'``.
        value (Any): The bad value.
        expected (str): What is valid, e.g. ``'a positive int'``.
        error (type): ``ValueError`` (bad value) or ``TypeError`` (bad
            type). Defaults to ValueError.

    Returns:
        Exception: The error to raise.
    """
    return error(f'{owner}: {name} must be {expected}, got {_got(value)}')


class Ref:
    """A bound that is another argument's value, plus an offset.

    ``Int(max=Ref('num_stages', -1))`` reads "at most num_stages - 1".
    """

    def __init__(self, name: str, offset: int = 0) -> None:
        self.name = name
        self.offset = offset

    def resolve(self, args: Args) -> int:
        return args[self.name] + self.offset

    def describe(self, args: Args) -> str:
        return f'{self.resolve(args)} ({self.name}={args[self.name]})'


def _bound(bound: Any, args: Args) -> Any:
    return bound.resolve(args) if isinstance(bound, Ref) else bound


def _show(bound: Any, args: Args) -> str:
    return bound.describe(args) if isinstance(bound, Ref) else str(bound)


class Rule:
    """One argument's rule: ``rule(owner, name, value, args) -> value``.

    Subclasses implement :meth:`describe` (what is valid, for messages) and
    :meth:`__call__`, which raises ``TypeError``/``ValueError`` through
    :func:`fail` or returns the (normalised) value.
    """
    refs: Tuple[str, ...] = ()

    def describe(self, args: Args) -> str:
        raise NotImplementedError

    def __call__(self, owner: str, name: str, value: Any, args: Args) -> Any:
        raise NotImplementedError


class Bool(Rule):
    """A bool (not 0/1, not a str), optionally only one of the two.

    Args:
        only (bool, optional): The one accepted value. Defaults to None.
        why (str): Reason shown when ``only`` refuses. Defaults to ''.
    """

    def __init__(self, only: Optional[bool] = None, why: str = '') -> None:
        self.only = only
        self.why = why

    def describe(self, args: Args) -> str:
        if self.only is None:
            return 'a bool (True or False)'
        return f'{self.only}' + (f' ({self.why})' if self.why else '')

    def __call__(self, owner, name, value, args):
        if not isinstance(value, bool):
            raise fail(owner, name, value, 'a bool (True or False)',
                       TypeError)
        if self.only is not None and value is not self.only:
            raise fail(owner, name, value, self.describe(args))
        return value


class Int(Rule):
    """An int (a bool or a float is refused), in a range or a set.

    Args:
        min (int | Ref, optional): Smallest valid value.
        max (int | Ref, optional): Largest valid value.
        choices (Iterable[int], optional): The valid values.
        odd (bool): Must be odd. Defaults to False.
        even (str, optional): Must be even; the text says why.
    """

    def __init__(self,
                 min: Any = None,
                 max: Any = None,
                 choices: Optional[Iterable[int]] = None,
                 odd: bool = False,
                 even: Optional[str] = None) -> None:
        self.min, self.max = min, max
        self.choices = None if choices is None else sorted(choices)
        self.odd, self.even = odd, even
        self.refs = tuple(b.name for b in (min, max) if isinstance(b, Ref))

    def describe(self, args: Args) -> str:
        if self.choices is not None:
            return f'one of {self.choices}'
        if self.odd:
            return 'an odd int >= 1 (1, 3, 5, ...)'
        lo, hi = self.min, self.max
        if lo is not None and hi is not None:
            return f'an int in {_show(lo, args)}..{_show(hi, args)}'
        if lo == 1:
            return 'a positive int (1, 2, ...)'
        if lo is not None:
            return f'an int >= {_show(lo, args)}'
        if hi is not None:
            return f'an int <= {_show(hi, args)}'
        return 'an int'

    def __call__(self, owner, name, value, args):
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(owner, name, value, self.describe(args), TypeError)
        lo, hi = _bound(self.min, args), _bound(self.max, args)
        if ((self.choices is not None and value not in self.choices)
                or (lo is not None and value < lo)
                or (hi is not None and value > hi)
                or (self.odd and value % 2 == 0)):
            raise fail(owner, name, value, self.describe(args))
        if self.even and value % 2:
            raise fail(owner, name, value, f'even ({self.even})')
        return value


class Float(Rule):
    """A real number (an int is accepted, a bool is not) in a range.

    Args:
        min (float, optional): Smallest valid value (inclusive).
        below (float, optional): Valid values are smaller (exclusive).
    """

    def __init__(self,
                 min: Optional[float] = None,
                 below: Optional[float] = None) -> None:
        self.min, self.below = min, below

    def describe(self, args: Args) -> str:
        lo = '(-inf' if self.min is None else f'[{self.min}'
        hi = 'inf)' if self.below is None else f'{self.below})'
        return f'a number in {lo}, {hi}'

    def __call__(self, owner, name, value, args):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(owner, name, value, self.describe(args), TypeError)
        if ((self.min is not None and not value >= self.min)
                or (self.below is not None and not value < self.below)
                or value != value):  # NaN
            raise fail(owner, name, value, self.describe(args))
        return value


class Str(Rule):
    """A str, optionally one of ``choices``."""

    def __init__(self, choices: Optional[Iterable[str]] = None) -> None:
        self.choices = None if choices is None else list(choices)

    def describe(self, args: Args) -> str:
        return 'a str' if self.choices is None else \
            f'one of {self.choices}'

    def __call__(self, owner, name, value, args):
        if not isinstance(value, str):
            raise fail(owner, name, value, self.describe(args), TypeError)
        if self.choices is not None and value not in self.choices:
            raise fail(owner, name, value, self.describe(args))
        return value


class Maybe(Rule):
    """``None`` or what ``rule`` accepts."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.refs = rule.refs

    def describe(self, args: Args) -> str:
        return f'None or {self.rule.describe(args)}'

    def __call__(self, owner, name, value, args):
        return None if value is None else self.rule(owner, name, value, args)


class Either(Rule):
    """What one of ``rules`` accepts (tried in order).

    A value of a type no rule takes is a ``TypeError``; one of the right
    type that no rule takes, the first such ``ValueError``.
    """

    def __init__(self, *rules: Rule) -> None:
        self.rules = rules
        self.refs = tuple(r for rule in rules for r in rule.refs)

    def describe(self, args: Args) -> str:
        return ' or '.join(rule.describe(args) for rule in self.rules)

    def __call__(self, owner, name, value, args):
        value_error = None
        for rule in self.rules:
            try:
                return rule(owner, name, value, args)
            except ValueError as err:
                value_error = value_error or err
            except TypeError:
                pass
        if value_error is not None:
            raise value_error
        raise fail(owner, name, value, self.describe(args), TypeError)


class Seq(Rule):
    """A list or tuple of items that ``item`` accepts, as a tuple.

    Args:
        item (Rule): Rule of each entry (its errors name ``name[i]``).
        length (int | Ref | tuple, optional): Valid length(s).
        unique (bool): Entries must be distinct. Defaults to False.
        nonempty (bool): At least one entry. Defaults to True.
        scalar (bool): A single item is accepted and becomes a 1-tuple.
            Defaults to False.
        what (str): How the entries are described. Defaults to the item
            rule's description.
    """

    def __init__(self,
                 item: Rule,
                 length: Any = None,
                 unique: bool = False,
                 nonempty: bool = True,
                 scalar: bool = False,
                 what: str = '') -> None:
        self.item, self.unique, self.nonempty = item, unique, nonempty
        self.scalar, self.what = scalar, what
        self.length = length if isinstance(length, tuple) or \
            length is None else (length, )
        self.refs = item.refs + tuple(
            b.name for b in self.length or () if isinstance(b, Ref))

    def describe(self, args: Args) -> str:
        text = 'a list/tuple'
        if self.length is not None:
            shown = {}
            for n in self.length:  # one text per distinct length
                shown.setdefault(_bound(n, args), _show(n, args))
            text += ' of ' + ' or '.join(shown.values()) + ' entries'
        if self.unique:
            text += ', distinct'
        text += f', each {self.what or self.item.describe(args)}'
        if self.scalar:
            text += ', or a single such value'
        return text

    def __call__(self, owner, name, value, args):
        if self.scalar and not isinstance(value, (list, tuple)):
            try:
                return (self.item(owner, name, value, args), )
            except TypeError:
                raise fail(owner, name, value, self.describe(args),
                           TypeError) from None
        if not isinstance(value, (list, tuple)):
            raise fail(owner, name, value, self.describe(args), TypeError)
        out = tuple(
            self.item(owner, f'{name}[{i}]', v, args)
            for i, v in enumerate(value))
        lengths = [_bound(n, args) for n in self.length or ()]
        if ((self.nonempty and not out)
                or (lengths and len(out) not in lengths)
                or (self.unique and len(set(out)) != len(out))):
            raise fail(owner, name, value, self.describe(args))
        return out


class Cfg(Rule):
    """A config dict (``dict``/``ConfigDict``) with ``required`` keys.

    Args:
        required (Sequence[str]): Keys it must have. Defaults to
            ``('type', )``.
        layer (str): If set, ``type`` must name a layer of mmengine's
            ``MODELS`` registry (where mmcv's ``build_conv_layer`` /
            ``build_norm_layer`` / ``build_activation_layer`` look), e.g.
            ``'a norm layer (BN3d, GN, SyncBN, ...)'``. Defaults to ''.
    """

    def __init__(self,
                 required: Sequence[str] = ('type', ),
                 layer: str = '') -> None:
        self.required = tuple(required)
        self.layer = layer

    def describe(self, args: Args) -> str:
        if not self.required:
            return 'a dict'
        return 'a config dict with ' + ', '.join(
            repr(k) for k in self.required)

    def __call__(self, owner, name, value, args):
        if not isinstance(value, Mapping):
            raise fail(owner, name, value, self.describe(args), TypeError)
        if any(k not in value for k in self.required):
            raise fail(owner, name, value, self.describe(args))
        typ = value.get('type', '')
        if 'type' in self.required and not (isinstance(typ, (str, type))
                                            or callable(typ)):
            raise fail(owner, f"{name}['type']", typ,
                       'a registered name or a class', TypeError)
        if self.layer and isinstance(typ, str):
            from mmengine.registry import MODELS  # the registry mmcv uses
            with MODELS.switch_scope_and_registry(None) as registry:
                known = registry.get(typ) is not None
            if not known:
                raise fail(owner, f"{name}['type']", typ,
                           f"the name of {self.layer} registered in "
                           "mmengine's MODELS")
        return value


class InitCfg(Rule):
    """mmengine's ``init_cfg``: None, a config dict or a list of them.

    A ``'Pretrained'`` entry needs ``checkpoint`` (a path or URL str).
    """

    def describe(self, args: Args) -> str:
        return "None, a dict with 'type' or a list of such dicts"

    def __call__(self, owner, name, value, args):
        if value is None:
            return None
        entries = value if isinstance(value, (list, tuple)) else [value]
        if not entries:
            raise fail(owner, name, value, self.describe(args))
        for i, cfg in enumerate(entries):
            where = name if entries is not value else f'{name}[{i}]'
            Cfg()(owner, where, cfg, args)
            if cfg['type'] == 'Pretrained' and not isinstance(
                    cfg.get('checkpoint'), str):
                raise fail(owner, where, cfg,
                           "(as a 'Pretrained' entry) a dict with "
                           'checkpoint=<path or URL str>')
        return value


def check_arg(owner: str, name: str, value: Any, rule: Rule,
              args: Optional[Args] = None) -> Any:
    """Check one value against a rule outside a constructor.

    Returns:
        Any: The normalised value.
    """
    return rule(owner, name, value, args or {})


class ArgSpec:
    """The rules of a constructor's arguments; decorates ``__init__``.

    Args:
        owner (str): Name shown in the messages (the class name).
        checks (Sequence[Callable]): Cross-argument checks, each
            ``check(owner, args)`` raising through :func:`fail`; they run
            after every argument passed its own rule.
        **rules (Rule): One rule per ``__init__`` parameter (``self``,
            ``*args`` and ``**kwargs`` excluded).
    """

    def __init__(self,
                 owner: str,
                 checks: Sequence[Callable[[str, Args], None]] = (),
                 **rules: Rule) -> None:
        self.owner = owner
        self.rules = rules
        self.checks = tuple(checks)
        # an argument whose bounds read another one is checked after it
        self.order = sorted(rules, key=lambda n: bool(rules[n].refs))

    def check(self, args: Args) -> Args:
        """Check ``args`` (name -> value); return the normalised copy."""
        out = dict(args)
        for name in self.order:
            out[name] = self.rules[name](self.owner, name, out[name], out)
        for check in self.checks:
            check(self.owner, out)
        return out

    def __call__(self, init: Callable) -> Callable:
        sig = inspect.signature(init)
        params = [
            p.name for p in list(sig.parameters.values())[1:]
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if set(params) != set(self.rules):
            raise TypeError(
                f'{self.owner}.__init__ parameters and rules differ: no '
                f'rule for {sorted(set(params) - set(self.rules))}, no '
                f'parameter for {sorted(set(self.rules) - set(params))}')

        @functools.wraps(init)
        def checked_init(obj, *args, **kwargs):
            bound = sig.bind(obj, *args, **kwargs)
            bound.apply_defaults()
            bound.arguments.update(
                self.check({n: bound.arguments[n]
                            for n in self.rules}))
            return init(*bound.args, **bound.kwargs)

        checked_init.arg_spec = self
        return checked_init
