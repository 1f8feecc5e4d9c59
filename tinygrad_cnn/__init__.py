"""tinygrad_cnn: a small, fast, correct autograd framework on NumPy, with PyTorch's API.

>>> import tinygrad_cnn as tg
>>> x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
tensor([[2., 4.],
        [6., 8.]])

The namespace mirrors ``torch``'s: ``tg.tensor``, ``tg.zeros``, ``tg.cat``, ``tg.float32``,
``tg.no_grad``, ``tg.nn.functional``, ``tg.autograd.grad``, ... (see docs/pytorch.md).
"""

# ruff: noqa: F401  (this module is the namespace: it re-exports PyTorch's names)
import builtins

from ._tensor import Size, Tensor  # first: the modules below build on it

# isort: split
from . import _dtypes, autograd, backends, datasets, functional, graph, linalg, nn, optim, testing, transforms, utils
from ._device import accelerator, cuda, device
from ._dtypes import (
    bool,
    cdouble,
    cfloat,
    complex64,
    complex128,
    double,
    float,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int,
    int8,
    int16,
    int32,
    int64,
    long,
    promote_types,
    result_type,
    set_default_dtype,
    short,
    uint8,
)
from .autograd import (
    AnomalyError,
    Context,
    Function,
    GraphFreedError,
    InPlaceError,
    detect_anomaly,
    enable_grad,
    grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .factories import (
    BoolTensor,
    ByteTensor,
    DoubleTensor,
    FloatTensor,
    IntTensor,
    LongTensor,
    arange,
    as_tensor,
    bernoulli,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    multinomial,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .functional import (  # PyTorch's names added with the activations below
    abs,
    absolute,
    acos,
    acosh,
    addcdiv,
    addcmul,
    addmm,
    all,
    allclose,
    amax,
    amin,
    aminmax,
    any,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    argmax,
    argmin,
    argwhere,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    bmm,
    broadcast_to,
    cat,
    ceil,
    chunk,
    clamp,
    clamp_max,
    clamp_min,
    clip,
    clone,
    concat,
    concatenate,
    copysign,
    cos,
    cosh,
    count_nonzero,
    cross,
    cummax,
    cummin,
    cumprod,
    cumsum,
    deg2rad,
    diag,
    diagonal,
    diff,
    dist,
    div,
    divide,
    dot,
    einsum,
    eq,
    equal,
    erf,
    erfc,
    exp,
    exp2,
    expm1,
    fix,
    flatten,
    flip,
    fliplr,
    flipud,
    floor,
    floor_divide,
    fmax,
    fmin,
    fmod,
    frac,
    gather,
    ge,
    ger,
    greater,
    greater_equal,
    gt,
    heaviside,
    hypot,
    index_add,
    index_copy,
    index_fill,
    index_select,
    inner,
    isclose,
    isfinite,
    isinf,
    isnan,
    isneginf,
    isposinf,
    kron,
    kthvalue,
    le,
    lerp,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    log_softmax,
    logaddexp,
    logaddexp2,
    logcumsumexp,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    logit,
    logsumexp,
    lt,
    masked_fill,
    masked_select,
    matmul,
    max,
    maximum,
    mean,
    median,
    min,
    minimum,
    mm,
    movedim,
    mul,
    multiply,
    mv,
    nan_to_num,
    nanmean,
    nansum,
    narrow,
    ne,
    neg,
    nonzero,
    norm,
    not_equal,
    outer,
    permute,
    positive,
    pow,
    prod,
    rad2deg,
    reciprocal,
    relu,
    remainder,
    repeat,
    repeat_interleave,
    reshape,
    roll,
    rot90,
    round,
    rsqrt,
    scatter,
    scatter_add,
    select,
    sgn,
    sigmoid,
    sign,
    signbit,
    sin,
    sinh,
    softmax,
    split,
    sqrt,
    square,
    squeeze,
    stack,
    std,
    sub,
    subtract,
    sum,
    swapaxes,
    swapdims,
    take,
    take_along_dim,
    tan,
    tanh,
    tensor_split,
    tile,
    trace,
    transpose,
    tril,
    triu,
    true_divide,
    trunc,
    unbind,
    unflatten,
    unsqueeze,
    var,
    where,
    xlogy,
)
from .functional import add as add
from .nn.activation import celu, celu_, hardshrink, prelu, relu_, rrelu, rrelu_, selu, selu_, threshold, threshold_
from .random import Generator, get_rng_state, manual_seed, seed, set_rng_state
from .serialization import CheckpointError, load, save
from .sorting import argsort, bincount, msort, sort, topk, unique
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

from . import out_argument as _out_argument  # noqa: E402
from .memory import tune_by_default as _tune_by_default  # noqa: E402

_tune_by_default()  # freed buffers are reused across training steps (see tinygrad_cnn.memory)

for _name in _out_argument.NAMES:  # PyTorch's out= on the functions that have it
    globals()[_name] = _out_argument.with_out(globals()[_name])


_deterministic = [False]


def use_deterministic_algorithms(mode: builtins.bool, *, warn_only: builtins.bool = False) -> None:
    """Recorded, as in PyTorch; it changes nothing: every computation here is deterministic already."""
    _deterministic[0] = builtins.bool(mode)


def are_deterministic_algorithms_enabled() -> builtins.bool:
    return _deterministic[0]


def is_tensor(obj: object) -> builtins.bool:
    """Whether ``obj`` is a :class:`Tensor`."""
    return isinstance(obj, Tensor)


def is_signed(x: Tensor) -> builtins.bool:
    """Whether ``x``'s dtype is signed (floating-point or signed integer), as ``x.is_signed()``."""
    return x.is_signed()


def is_floating_point(x: Tensor) -> builtins.bool:
    return x.is_floating_point()


def numel(x: Tensor) -> builtins.int:
    """The number of elements of ``x``."""
    return x.numel()


__all__ = [name for name in dir() if not name.startswith("_") and name != "builtins"]
