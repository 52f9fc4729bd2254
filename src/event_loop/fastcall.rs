//! Hand-written `METH_FASTCALL | METH_KEYWORDS` entry points for the four
//! scheduling methods: `call_soon`, `call_soon_threadsafe`, `call_later`,
//! `call_at`.
//!
//! These are the loop's hottest Python-facing calls (the C `Task` calls
//! `loop.call_soon(step, context=ctx)` on every step). PyO3's generic
//! argument machinery (trampoline, `*args` tuple building, keyword matching)
//! cost more than the scheduling itself, so the methods are installed on the
//! type as plain method descriptors whose C function parses the vectorcall
//! arguments directly: fixed positionals, the callback, its arguments (a
//! tuple built only when there are any), and the one keyword `context`.
//!
//! Errors follow asyncio: a missing callback or delay, or an unknown keyword,
//! is a `TypeError`. A Rust panic never crosses into Python (boundary.rs).

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple};
use pyo3::{Borrowed, PyTypeInfo};

use crate::methoddef::{method_def, MethodDef};

/// The interned keyword name `context`.
static CONTEXT_NAME: PyOnceLock<Py<PyString>> = PyOnceLock::new();

use super::Loop;

#[derive(Clone, Copy)]
enum Kind {
    Soon,
    SoonThreadsafe,
    Later,
    At,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Soon => "call_soon",
            Kind::SoonThreadsafe => "call_soon_threadsafe",
            Kind::Later => "call_later",
            Kind::At => "call_at",
        }
    }

    /// Positional parameters before the callback (the delay or deadline).
    fn n_fixed(self) -> usize {
        match self {
            Kind::Soon | Kind::SoonThreadsafe => 0,
            Kind::Later | Kind::At => 1,
        }
    }
}

/// Parses the vectorcall arguments and dispatches to the loop.
///
/// # Safety
/// `args` points to `nargs + len(kwnames)` valid borrowed references, as the
/// vectorcall protocol guarantees; `slf` is a valid object; GIL held.
unsafe fn dispatch(
    py: Python<'_>,
    kind: Kind,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Py<PyAny>> {
    // SAFETY: caller contract (valid borrowed `slf`, GIL held). Borrowed
    // views cost no reference counting.
    let slf = unsafe { Borrowed::from_ptr(py, slf) };
    // SAFETY: `install` makes these methods descriptors of the `Loop` type
    // (`PyDescr_NewMethod(Loop, ..)`), and CPython's method descriptor
    // checks that `self` is an instance of that type (subclasses included)
    // before it calls us, whether called unbound or bound. ferrio's loop is
    // a Python subclass, so the checked cast paid a `PyType_IsSubtype` walk
    // per call (~3% of a `call_soon_threadsafe` producer).
    let lp = unsafe { slf.cast_unchecked::<Loop>() };
    // SAFETY: nargsf comes from the vectorcall protocol.
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf as usize) } as usize;
    let n_fixed = kind.n_fixed();
    if nargs < n_fixed + 1 {
        let missing = if nargs < n_fixed {
            if matches!(kind, Kind::Later) {
                "'delay' and 'callback'"
            } else {
                "'when' and 'callback'"
            }
        } else {
            "'callback'"
        };
        return Err(PyTypeError::new_err(format!(
            "{}() missing required positional argument(s): {missing}",
            kind.name()
        )));
    }
    // SAFETY: index < nargs + len(kwnames); borrowed references valid for
    // the duration of the call.
    let arg = |i: usize| unsafe { Borrowed::from_ptr(py, *args.add(i)) };

    let mut context: Option<Borrowed<'_, '_, PyAny>> = None;
    if !kwnames.is_null() {
        // SAFETY: kwnames is a tuple of str per the vectorcall protocol.
        let names = unsafe { Borrowed::from_ptr(py, kwnames) };
        let names = names.cast::<PyTuple>().map_err(PyErr::from)?;
        let interned = CONTEXT_NAME.get_or_init(py, || PyString::intern(py, "context").unbind());
        for (i, name) in names.iter().enumerate() {
            // Callers (the C Task, keyword calls from Python) pass the
            // interned string: compare pointers first, text second.
            let is_context = name.as_ptr() == interned.as_ptr()
                || name.cast::<PyString>().map_err(PyErr::from)?.to_str()? == "context";
            if is_context {
                context = Some(arg(nargs + i));
            } else {
                return Err(PyTypeError::new_err(format!(
                    "{}() got an unexpected keyword argument '{}'",
                    kind.name(),
                    name.str()?
                )));
            }
        }
    }
    let context = context.filter(|c| !c.is_none());
    let context = context.as_deref();

    let callback = arg(n_fixed);
    let cb_args = if nargs > n_fixed + 1 {
        // SAFETY: the slice covers exactly the callback's arguments.
        let slice =
            unsafe { std::slice::from_raw_parts(args.add(n_fixed + 1), nargs - n_fixed - 1) };
        PyTuple::new(
            py,
            // SAFETY: each entry is a valid borrowed reference.
            slice.iter().map(|p| unsafe { Borrowed::from_ptr(py, *p) }),
        )?
    } else {
        crate::pyhelpers::empty_tuple(py)
    };
    let this = lp.get();
    let out = match kind {
        Kind::Soon => this
            .call_soon_impl(py, &callback, &cb_args, context, false)?
            .into_py(),
        Kind::SoonThreadsafe => this
            .call_soon_impl(py, &callback, &cb_args, context, true)?
            .into_py(),
        Kind::Later => {
            Loop::call_later_impl(&lp, Some(&arg(0)), &callback, &cb_args, context)?.into_py()
        }
        Kind::At => this
            .call_at_impl(py, Some(&arg(0)), &callback, &cb_args, context)?
            .into_py(),
    };
    Ok(out)
}

/// Runs `dispatch` behind the panic/exception boundary.
///
/// # Safety
/// As for [`dispatch`].
#[inline(always)]
unsafe fn entry(
    kind: Kind,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: forwarded caller contract (CPython calls methods with the GIL).
    crate::boundary::guard(|py| {
        unsafe { dispatch(py, kind, slf, args, nargsf, kwnames) }.map(Py::into_ptr)
    })
}

macro_rules! fastcall_fn {
    ($name:ident, $kind:expr) => {
        unsafe extern "C" fn $name(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargsf: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: called by CPython through the method descriptor with
            // vectorcall arguments.
            unsafe { entry($kind, slf, args, nargsf, kwnames) }
        }
    };
}

fastcall_fn!(call_soon_fast, Kind::Soon);
fastcall_fn!(call_soon_threadsafe_fast, Kind::SoonThreadsafe);
fastcall_fn!(call_later_fast, Kind::Later);
fastcall_fn!(call_at_fast, Kind::At);

static DEFS: [MethodDef; 4] = [
    method_def!(
        "call_soon",
        call_soon_fast,
        "call_soon(callback, *args, context=None)\n--\n\nSchedule callback(*args) for the next iteration; returns a Handle."
    ),
    method_def!(
        "call_soon_threadsafe",
        call_soon_threadsafe_fast,
        "call_soon_threadsafe(callback, *args, context=None)\n--\n\nLike call_soon, from any thread; wakes the loop."
    ),
    method_def!(
        "call_later",
        call_later_fast,
        "call_later(delay, callback, *args, context=None)\n--\n\nSchedule callback(*args) after delay seconds; returns a TimerHandle."
    ),
    method_def!(
        "call_at",
        call_at_fast,
        "call_at(when, callback, *args, context=None)\n--\n\nSchedule callback(*args) at loop time when; returns a TimerHandle."
    ),
];

/// Installs the four methods on the `Loop` type.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    crate::methoddef::install(&Loop::type_object(py), &DEFS)
}
