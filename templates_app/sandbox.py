"""The Jinja2 sandbox customer templates run in, and the budget that bounds one render.

What a template can reach: the JSON data it is given (dicts, lists, strings, numbers, booleans,
null), a handful of read-only string and dict methods, Jinja's own loop/namespace/cycler helpers,
and the whitelisted filters. Attribute access never walks into Python objects: `getattr` and
`getitem` are replaced, so `''.__class__` is an empty undefined value, not a type.

Why a budget instead of a timer signal: the renderer runs in Celery prefork children, in
gunicorn threads and in tests, and SIGALRM only works in a process's main thread. Instead every
place where a template can do unbounded work ticks the budget: each loop iteration (the parsed
template is rewritten so every `for` iterates through `guard_iter`), each function or macro call,
each arithmetic operator, each `~` concatenation and each output chunk. Without a loop or a call a
template's work is bounded by its own length, so these checkpoints see every path to a hang. A
tick compares this thread's CPU time with the deadline (at most every 10 ms of wall time).
Memory is bounded the same way: every operation that can build a large string or list checks the
size it is about to create (before creating it) against the per-part limit, and the total built
in one render against an allocation limit, so `'x' * 10**9` fails before it allocates.
"""

import contextvars
import functools
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from jinja2 import TemplateSyntaxError, nodes
from jinja2.filters import FILTERS
from jinja2.runtime import LoopContext, Macro, Undefined, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace, _PassArg
from jinja2.visitor import NodeTransformer
from markupsafe import soft_str

MAX_PART_CHARS = 1_000_000
MAX_ALLOCATED_CHARS = 20_000_000
MAX_CPU_SECONDS = 2.0
MAX_RANGE = 10_000
MAX_CALL_DEPTH = 64
MAX_FORMAT_WIDTH = 1_000
MAX_INT_BITS = 64_000
# Compile cost grows with the parsed tree (Jinja's code generator recurses per node, and Python
# refuses code nested ~200 parentheses deep), so a part's tree is bounded before it is compiled.
MAX_TREE_DEPTH = 50
MAX_TREE_NODES = 5_000
MAX_LOOP_NESTING = 16  # Python compiles at most 20 statically nested blocks
_CHECK_CPU_EVERY = 0.01


class RenderError(Exception):
    """A template failed to render: bad data, a runtime error, or a limit hit. Never retried."""


class RenderLimitExceeded(RenderError):
    """A sandbox limit was hit. The budget in force remembers the first one, because Jinja's
    constant folding swallows errors: a version is refused at save time when folding one of its
    constant expressions hit a limit, instead of saving something that can never render."""

    def __init__(self, message: str):
        super().__init__(message)
        budget = _budget.get()
        if budget is not None and budget.exceeded is None:
            budget.exceeded = message


@dataclass
class Budget:
    deadline: float
    locale: object = None
    tzinfo: object = None
    next_check: float = 0.0
    allocated: int = 0
    depth: int = 0
    exceeded: str | None = None

    def tick(self):
        # The wall clock is cheap to read and never runs slower than this thread's CPU clock, so
        # the (ten times dearer) CPU clock is read only once 10 ms of wall time have passed.
        now = time.monotonic()
        if now >= self.next_check:
            self.next_check = now + _CHECK_CPU_EVERY
            if time.thread_time() > self.deadline:
                raise RenderLimitExceeded(f"The template took more than {MAX_CPU_SECONDS:g} seconds of CPU time.")

    def charge(self, size: int):
        check_size(size)
        self.allocated += size
        if self.allocated > MAX_ALLOCATED_CHARS:
            raise RenderLimitExceeded(f"The template built more than {MAX_ALLOCATED_CHARS:,} characters of text.")


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("template_budget", default=None)


def current_budget() -> Budget | None:
    return _budget.get()


def start_budget(**kwargs) -> contextvars.Token:
    return _budget.set(Budget(deadline=time.thread_time() + MAX_CPU_SECONDS, **kwargs))


def end_budget(token: contextvars.Token):
    _budget.reset(token)


def tick():
    budget = _budget.get()
    if budget is not None:
        budget.tick()


def check_size(size: int):
    if size > MAX_PART_CHARS:
        raise RenderLimitExceeded(f"The template would build a value of more than {MAX_PART_CHARS:,} characters.")


def charge(size: int):
    budget = _budget.get()
    if budget is None:
        check_size(size)
    else:
        budget.charge(size)


class Blank(Undefined):
    """A missing variable: renders as empty text, and stays blank through attribute and item
    access, arithmetic and calls; compares as false. It never raises."""

    __slots__ = ()

    def __html__(self):
        return ""

    def __getattr__(self, name):
        if name[:2] == "__" and name[-2:] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, name):
        return self

    def _blank(self, *args, **kwargs):
        return self

    def _false(self, other):
        return False

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _blank
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _blank
    __pow__ = __rpow__ = __neg__ = __pos__ = __call__ = _blank
    __lt__ = __le__ = __gt__ = __ge__ = _false

    def __int__(self):
        return 0

    def __float__(self):
        return 0.0


_STR_METHODS = frozenset(
    [
        "upper",
        "lower",
        "title",
        "capitalize",
        "strip",
        "lstrip",
        "rstrip",
        "startswith",
        "endswith",
        "split",
        "rsplit",
        "splitlines",
        "isdigit",
        "isalpha",
        "isalnum",
        "isspace",
        "islower",
        "isupper",
        "count",
        "find",
    ]
)
_DICT_METHODS = frozenset({"items", "keys", "values", "get"})
_LIST_METHODS = frozenset({"index", "count"})
_JINJA_HELPERS = (LoopContext, Namespace, Cycler, Joiner, Macro)


class _Callable:
    """A function handed to templates: callable, with no attributes to walk and a bland repr
    (a bare function or bound method would print its module and memory address)."""

    __slots__ = ("_func", "_name")

    def __init__(self, func, name: str):
        self._func = func
        self._name = name

    def __call__(self, *args, **kwargs):
        return self._func(*args, **kwargs)

    def __repr__(self):
        return f"<{self._name}>"


class _Cycler(Cycler):
    def __repr__(self):
        return "<cycler>"


class _Joiner(Joiner):
    def __repr__(self):
        return "<joiner>"


def _bounded_range(*args):
    args = tuple(0 if isinstance(arg, Undefined) else arg for arg in args)
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise RenderLimitExceeded(f"range() is limited to {MAX_RANGE:,} items.")
    return numbers


def _make_dict(**kwargs):
    return dict(kwargs)


_PRINTF_FLAGS = frozenset("#0- +")
_PRINTF_CONVERSIONS = frozenset("diouxXeEfFgGcrsa%")
# The most characters one escaped character can become (`'` → `&#39;`, `"` → `&#34;`).
_ESCAPE_GROWTH = 5


def _printf_number(pattern: str, i: int) -> tuple[int, int]:
    start = i
    while i < len(pattern) and pattern[i].isdigit():
        i += 1
    if i - start > len(str(MAX_FORMAT_WIDTH)):
        raise RenderLimitExceeded(f"Format widths are limited to {MAX_FORMAT_WIDTH}.")
    number = int(pattern[start:i]) if i > start else 0
    if number > MAX_FORMAT_WIDTH:
        raise RenderLimitExceeded(f"Format widths are limited to {MAX_FORMAT_WIDTH}.")
    return number, i


def printf_conversions(pattern: str) -> tuple[int, list[tuple[str | None, int, str]]]:
    """Parse a whole printf pattern the way `str % args` does: (literal characters, conversions
    as (mapping key or None, width + precision, conversion)). `%(key)` mapping keys (parentheses
    nest, as in CPython), flags, widths, precisions and length modifiers are all read, so no
    form of the grammar slips a width past the limit. `*` widths are refused: their size would
    come from the data."""
    literal, conversions, i, n = 0, [], 0, len(pattern)
    while i < n:
        j = pattern.find("%", i)
        if j < 0:
            literal += n - i
            break
        literal += j - i
        i = j + 1
        key = None
        if i < n and pattern[i] == "(":
            depth, start = 1, i + 1
            i += 1
            while i < n and depth:
                depth += {"(": 1, ")": -1}.get(pattern[i], 0)
                i += 1
            if depth:
                raise RenderError("Incomplete format key in the format string.")
            key = pattern[start : i - 1]
        while i < n and pattern[i] in _PRINTF_FLAGS:
            i += 1
        if i < n and pattern[i] == "*":
            raise RenderLimitExceeded(f"Format widths are limited to {MAX_FORMAT_WIDTH}; '*' widths are not supported.")
        width, i = _printf_number(pattern, i)
        precision = 0
        if i < n and pattern[i] == ".":
            i += 1
            if i < n and pattern[i] == "*":
                raise RenderLimitExceeded(
                    f"Format widths are limited to {MAX_FORMAT_WIDTH}; '*' precisions are not supported."
                )
            precision, i = _printf_number(pattern, i)
        while i < n and pattern[i] in "hlL":
            i += 1
        if i >= n or pattern[i] not in _PRINTF_CONVERSIONS:
            raise RenderError("Unsupported or incomplete format in the format string.")
        conversions.append((key, width + precision, pattern[i]))
        i += 1
    return literal, conversions


def _printf_text(value, conversion: str) -> int:
    if conversion in "ra":
        return len(repr(value))
    if conversion == "c":
        return 1
    if conversion in "diouxXeEfFgG":
        # Octal digits outnumber decimal ones; a float prints up to 309 integer digits.
        return 2 * len(str(value)) + 320
    return len(str(value))


def predict_printf(pattern, values) -> int:
    """The most characters `pattern % values` can produce, computed without building it.

    `values` is what `%` receives: a tuple (positional), a dict (mapping keys, each may repeat)
    or a single value. A Markup pattern escapes its arguments, so they may grow."""
    literal, conversions = printf_conversions(str(pattern))
    growth = _ESCAPE_GROWTH if hasattr(pattern, "__html__") else 1
    positional = values if isinstance(values, tuple) else (values,)
    total, index, sizes = literal, 0, {}
    for key, padding, conversion in conversions:
        if conversion == "%":
            total += 1 + padding
            continue
        if key is not None:
            value = values.get(key) if isinstance(values, dict) else None
            slot = ("key", key)
        else:
            value = positional[index] if index < len(positional) else None
            slot = ("index", index)
            index += 1
        if slot not in sizes:
            sizes[slot] = _printf_text(value, conversion) * growth
        total += sizes[slot] + padding
        if total > MAX_PART_CHARS:
            break
    return total


def _pass_like(template):
    """Copy Jinja's pass_context/pass_environment marker so a wrapper receives the same arguments."""

    def mark(wrapper):
        pass_arg = _PassArg.from_obj(template)
        if pass_arg is not None:
            wrapper.jinja_pass_arg = pass_arg
        return wrapper

    return mark


def _blank_on_undefined(func):
    """A filter applied to a missing value gives a missing value (renders empty), not an error.
    Every filter call is also a budget checkpoint."""
    skip = 1 if _PassArg.from_obj(func) is not None else 0

    @_pass_like(func)
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        tick()
        if len(args) > skip and isinstance(args[skip], Undefined):
            return args[skip]
        return func(*args, **kwargs)

    return wrapper


def _bounded_filter(func, predict):
    """Run `predict(value, *args, **kwargs)` (the size the filter would build) before the filter."""
    skip = 1 if _PassArg.from_obj(func) is not None else 0

    @_pass_like(func)
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if len(args) > skip and hasattr(args[skip], "__next__"):
            # A generator (from map/select) can be read once: read it here, for both steps.
            args = (*args[:skip], list(args[skip]), *args[skip + 1 :])
        predicted = predict(*args[skip:], **kwargs)
        check_size(predicted)
        result = func(*args, **kwargs)
        if isinstance(result, (str, list, tuple)):
            charge(len(result))
        return result

    return wrapper


def _int_arg(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _predict_join(value, d="", attribute=None):
    items = value if isinstance(value, (list, tuple, str)) else list(value)
    total = len(soft_str(d)) * max(len(items) - 1, 0)
    for item in items:
        total += len(item) if isinstance(item, str) else len(soft_str(item))
        if total > MAX_PART_CHARS:
            break
    return total


def _predict_replace(s, old, new, count=None):
    s, old, new = soft_str(s), soft_str(old), soft_str(new)
    occurrences = s.count(old) if old else len(s) + 1
    if count is not None:
        occurrences = min(occurrences, max(_int_arg(count, occurrences), 0))
    return len(s) + occurrences * max(len(new) - len(old), 0)


def _predict_center(value, width=80):
    return max(len(soft_str(value)), _int_arg(width, 0))


def _predict_indent(s, width=4, first=False, blank=False):
    prefix = len(width) if isinstance(width, str) else _int_arg(width, 0)
    s = soft_str(s)
    return len(s) + (s.count("\n") + 1) * prefix


def _predict_wordwrap(s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
    s = soft_str(s)
    lines = len(s) // max(_int_arg(width, 1), 1) + s.count("\n") + 1
    return len(s) + lines * len(soft_str(wrapstring or "\n"))


def _predict_format(value, *args, **kwargs):
    # What jinja's `format` filter hands to `%`: the keyword arguments, else the positional ones.
    return predict_printf(soft_str(value), kwargs or args)


def _predict_count_arg(value, count=1, fill_with=None):
    if _int_arg(count, 0) > MAX_RANGE:
        raise RenderLimitExceeded(f"batch/slice sizes are limited to {MAX_RANGE:,}.")
    return 0


def _predict_tojson(value, indent=None):
    if indent is not None and _int_arg(indent, 0) > 16:
        raise RenderLimitExceeded("tojson indent is limited to 16.")
    return 0


_PASSTHROUGH_FILTERS = [
    "abs",
    "capitalize",
    "count",
    "dictsort",
    "e",
    "escape",
    "filesizeformat",
    "first",
    "float",
    "forceescape",
    "groupby",
    "int",
    "last",
    "length",
    "list",
    "lower",
    "items",
    "map",
    "min",
    "max",
    "random",
    "reject",
    "rejectattr",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "sort",
    "string",
    "striptags",
    "sum",
    "title",
    "trim",
    "truncate",
    "unique",
    "upper",
    "urlencode",
    "urlize",
    "wordcount",
    "xmlattr",
]

_BOUNDED_FILTERS = {
    "join": _predict_join,
    "replace": _predict_replace,
    "center": _predict_center,
    "indent": _predict_indent,
    "wordwrap": _predict_wordwrap,
    "format": _predict_format,
    "batch": _predict_count_arg,
    "slice": _predict_count_arg,
    "tojson": _predict_tojson,
}


_UNSUPPORTED_TAGS = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from … import",
}


def check_tree(tree: nodes.Template) -> int:
    """Refuse (TemplateSyntaxError, with the line) a parsed template that is too big or too
    deep to compile cheaply, that uses a tag a self-contained version cannot have, or whose
    `{% call %}` does not call one of its own macros (anything else yields a non-text value).
    Returns the number of nodes. Iterative, so a deep tree cannot exhaust the stack here."""
    macros, calls = {"caller"}, []
    count = 0
    stack = [(tree, 1, 0)]
    while stack:
        node, depth, loops = stack.pop()
        count += 1
        if count > MAX_TREE_NODES:
            raise TemplateSyntaxError(
                f"the template is too large: more than {MAX_TREE_NODES:,} tags, expressions and text runs.",
                node.lineno,
            )
        if depth > MAX_TREE_DEPTH:
            raise TemplateSyntaxError(
                f"the template nests too deeply: expressions, filters and tags at most {MAX_TREE_DEPTH} levels.",
                node.lineno,
            )
        tag = _UNSUPPORTED_TAGS.get(type(node))
        if tag is not None:
            raise TemplateSyntaxError(f"'{tag}' is not supported: a template version is self-contained.", node.lineno)
        if isinstance(node, nodes.For):
            loops += 1
            if loops > MAX_LOOP_NESTING:
                raise TemplateSyntaxError(f"'for' loops nest at most {MAX_LOOP_NESTING} deep.", node.lineno)
        elif isinstance(node, nodes.Macro):
            macros.add(node.name)
        elif isinstance(node, nodes.CallBlock):
            calls.append(node)
        stack.extend((child, depth + 1, loops) for child in node.iter_child_nodes())
    for node in sorted(calls, key=lambda call: call.lineno):
        callee = node.call.node
        if not (isinstance(callee, nodes.Name) and callee.name in macros):
            raise TemplateSyntaxError("'call' must call a macro defined in this template.", node.lineno)
    return count


class _Guard(NodeTransformer):
    """Route every loop's iterable and every `~` concatenation through the sandbox's guards.

    The calls go through `environment.<name>` (an EnvironmentAttribute node), which a template
    cannot shadow with a variable of its own.
    """

    def visit_For(self, node):
        node = self.generic_visit(node)
        node.iter = nodes.Call(nodes.EnvironmentAttribute("guard_iter"), [node.iter], [], None, None)
        return node

    def visit_Concat(self, node):
        node = self.generic_visit(node)
        return nodes.Call(nodes.EnvironmentAttribute("guard_concat"), node.nodes, [], None, None)


class Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, *, autoescape: bool):
        # optimized=False: Jinja's optimizer re-folds every subtree at every level (cubic in the
        # nesting: `x|upper` ×150 took 30 s). Outputs are still folded once, under the budget.
        super().__init__(
            autoescape=autoescape,
            undefined=Blank,
            finalize=_finalize,
            auto_reload=False,
            cache_size=0,
            optimized=False,
        )
        self.globals.clear()
        self.globals.update(
            {
                name: _Callable(func, name)
                for name, func in (
                    ("range", _bounded_range),
                    ("dict", _make_dict),
                    ("namespace", Namespace),
                    ("cycler", _Cycler),
                    ("joiner", _Joiner),
                )
            }
        )
        filters = {name: FILTERS[name] for name in _PASSTHROUGH_FILTERS}
        filters.update({name: _bounded_filter(FILTERS[name], predict) for name, predict in _BOUNDED_FILTERS.items()})
        filters["attr"] = self._attr_filter
        filters["string"] = _text
        self.filters = {
            name: (f if name in ("default", "d") else _blank_on_undefined(f)) for name, f in filters.items()
        }
        self.filters["default"] = self.filters["d"] = FILTERS["default"]

    def add_filters(self, filters: dict):
        self.filters.update({name: _blank_on_undefined(func) for name, func in filters.items()})

    def compile_guarded(self, source: str):
        """Parse, check the tree's size and shape (`check_tree`), rewrite loops and concatenations
        through the guards, and build the template. Raises TemplateSyntaxError for a refusal."""
        tree = self.parse(source)
        check_tree(tree)
        return self.compile_tree(tree)

    def compile_tree(self, tree: nodes.Template):
        """Build a template from a tree `check_tree` accepted."""
        tree = _Guard().visit(tree)
        return self.template_class.from_code(self, self.compile(tree), self.make_globals(None), None)

    def _attr_filter(self, obj, name):
        return self.getattr(obj, str(name))

    def guard_iter(self, iterable):
        for item in iterable:
            tick()
            yield item

    def guard_concat(self, *parts):
        texts = [part if hasattr(part, "__html__") else _text(part) for part in parts]
        charge(sum(len(text) for text in texts))
        return (markup_join if self.autoescape else str_join)(texts)

    def getattr(self, obj, attribute):
        if isinstance(obj, Undefined):
            return obj
        if isinstance(obj, dict):
            if attribute in obj:
                return obj[attribute]
            if attribute in _DICT_METHODS:
                return _Callable(getattr(obj, attribute), attribute)
        elif isinstance(obj, str):
            if attribute in _STR_METHODS:
                return _Callable(getattr(obj, attribute), attribute)
        elif isinstance(obj, (list, tuple)):
            if attribute in _LIST_METHODS:
                return _Callable(getattr(obj, attribute), attribute)
        elif isinstance(obj, _JINJA_HELPERS):
            return super().getattr(obj, attribute)
        return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj, argument):
        if isinstance(obj, Undefined):
            return obj
        if isinstance(obj, (dict, list, tuple, str)):
            try:
                return obj[argument]
            except (TypeError, LookupError):
                pass
        if isinstance(argument, str):
            return self.getattr(obj, argument)
        return self.undefined(obj=obj, name=str(argument))

    def call(__self, __context, __obj, *args, **kwargs):
        budget = _budget.get()
        if budget is None:
            return super().call(__context, __obj, *args, **kwargs)
        budget.tick()
        if budget.depth >= MAX_CALL_DEPTH:
            raise RenderLimitExceeded(f"Macros and loops may nest at most {MAX_CALL_DEPTH} calls deep.")
        budget.depth += 1
        try:
            return super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1

    def call_binop(self, context, operator_, left, right):
        tick()
        if isinstance(left, Undefined):
            return left
        if isinstance(right, Undefined):
            return right
        _check_binop(operator_, left, right)
        result = self.binop_table[operator_](left, right)
        if isinstance(result, (str, list, tuple)):
            charge(len(result))
        return result


def _check_binop(op, left, right):
    sequences = (str, list, tuple)
    if op == "*":
        if isinstance(left, sequences) and isinstance(right, int):
            check_size(len(left) * max(right, 0))
        elif isinstance(right, sequences) and isinstance(left, int):
            check_size(len(right) * max(left, 0))
        elif isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise RenderLimitExceeded("Numbers this large are not supported.")
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and left.bit_length() * right > MAX_INT_BITS:
            raise RenderLimitExceeded("Numbers this large are not supported.")
    elif op == "+":
        if isinstance(left, sequences) and isinstance(right, sequences):
            check_size(len(left) + len(right))
    elif op == "%" and isinstance(left, str):
        check_size(predict_printf(left, right))


_PRINTABLE = (str, int, float, Decimal, date, list, tuple, dict, Undefined)


def _text(value) -> str:
    """Text of a data value; other objects (generators, helpers) have no text worth showing."""
    return soft_str(value) if isinstance(value, _PRINTABLE) else ""


def _finalize(value):
    """Print data, not objects: `None`, functions, macros, `loop` and `self` print as nothing."""
    if value is None or not isinstance(value, _PRINTABLE):
        return ""
    return value
