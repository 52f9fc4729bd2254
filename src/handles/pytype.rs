//! The `ferrio.Handle` and `ferrio.TimerHandle` Python types, built by hand
//! with `PyType_FromSpec` so they are *not* GC types (see mod.rs).
//!
//! Object layout (`HandleObject`): the Python header, a weak-reference list,
//! then the Rust [`HandleCore`]. Both types share the layout; a TimerHandle's
//! core carries a `TimerPart`. Instances are created only by the loop
//! (`Py_TPFLAGS_DISALLOW_INSTANTIATION`), always fully initialised, and the
//! types are immutable and not subclassable, so every object of these types
//! has a valid core.
//!
//! Every slot function catches Rust panics and raises them as
//! `pyo3_runtime.PanicException`; none unwinds into CPython.

use std::ffi::{c_char, c_int, c_void};
use std::mem::{offset_of, size_of};
use std::ptr;

use pyo3::exceptions::{PyMemoryError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyType};

use super::HandleCore;
use crate::pyhelpers;

#[repr(C)]
pub(super) struct HandleObject {
    ob_base: ffi::PyObject,
    weaklist: *mut ffi::PyObject,
    core: HandleCore,
}

static HANDLE_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMER_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// # Safety
/// `obj` must point to a live `HandleObject` (an instance of either type).
#[inline]
pub(super) unsafe fn core_of<'a>(obj: *mut ffi::PyObject) -> &'a HandleCore {
    // SAFETY: per the contract; `core` is initialised before the object is
    // published and dropped only in dealloc.
    unsafe { &(*(obj as *const HandleObject)).core }
}

/// Allocates and initialises a handle object of the right type.
pub(super) fn new_object(py: Python<'_>, core: HandleCore) -> PyResult<Py<PyAny>> {
    let cell = if core.timer.is_some() {
        &TIMER_TYPE
    } else {
        &HANDLE_TYPE
    };
    let ty = cell
        .get(py)
        .ok_or_else(|| PyTypeError::new_err("ferrio handle types are not initialised"))?;
    // SAFETY: we allocate exactly size_of::<HandleObject>() bytes with
    // Python's object allocator, initialise the header with PyObject_Init
    // (which sets the refcount to 1 and takes a reference to the heap type),
    // then write every other field before the object is visible to Python.
    unsafe {
        let obj = ffi::PyObject_Malloc(size_of::<HandleObject>()) as *mut HandleObject;
        if obj.is_null() {
            return Err(PyMemoryError::new_err(()));
        }
        ffi::PyObject_Init(obj.cast(), ty.bind(py).as_type_ptr());
        ptr::addr_of_mut!((*obj).weaklist).write(ptr::null_mut());
        ptr::addr_of_mut!((*obj).core).write(core);
        Ok(Bound::from_owned_ptr(py, obj.cast()).unbind())
    }
}

unsafe extern "C" fn handle_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: called by CPython with the GIL held, for an instance of one of
    // our types (valid HandleObject) whose refcount reached zero. We clear
    // weak references first (callbacks may run and see the object still
    // whole), then drop the Rust state, free the memory with the allocator
    // that made it, and drop the instance's reference to its heap type.
    unsafe {
        let h = obj as *mut HandleObject;
        if !(*h).weaklist.is_null() {
            ffi::PyObject_ClearWeakRefs(obj);
        }
        let ty = ffi::Py_TYPE(obj);
        // Move the core out and decref its objects now (Py's Drop would
        // defer them: PyO3 does not know this thread is attached here).
        let core = ptr::read(ptr::addr_of!((*h).core));
        core.dispose(Python::assume_attached());
        ffi::PyObject_Free(obj.cast());
        ffi::Py_DECREF(ty.cast());
    }
}

use crate::boundary::guard;

fn none(py: Python<'_>) -> *mut ffi::PyObject {
    py.None().into_ptr()
}

fn bool_obj(py: Python<'_>, v: bool) -> *mut ffi::PyObject {
    PyBool::new(py, v).to_owned().into_ptr()
}

fn opt_obj<T>(py: Python<'_>, v: Option<Py<T>>) -> *mut ffi::PyObject {
    match v {
        Some(o) => o.into_ptr(),
        None => none(py),
    }
}

/// The callback's function or arguments as a new reference (or None); the
/// other half is decref'd at once.
fn callback_part(py: Python<'_>, core: &HandleCore, func: bool) -> *mut ffi::PyObject {
    match core.callback_ref(py) {
        Some(cb) => {
            let (f, a) = (cb.func.into_bound(py), cb.args.into_bound(py));
            if func {
                f.into_ptr()
            } else {
                a.into_any().into_ptr()
            }
        }
        None => none(py),
    }
}

// -- methods ---------------------------------------------------------------

unsafe extern "C" fn m_cancel(
    slf: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(|py| {
        // SAFETY: `slf` is an instance of our type (method of our type).
        unsafe { core_of(slf) }.cancel(py);
        Ok(none(py))
    })
}

unsafe extern "C" fn m_cancelled(
    slf: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: as above.
    guard(|py| Ok(bool_obj(py, unsafe { core_of(slf) }.is_cancelled())))
}

unsafe extern "C" fn m_get_context(
    slf: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: as above.
    guard(|py| Ok(unsafe { core_of(slf) }.context(py)?.to_owned().into_ptr()))
}

unsafe extern "C" fn m_when(slf: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    guard(|py| {
        // SAFETY: as above.
        Ok(unsafe { core_of(slf) }.when_object(py)?.into_ptr())
    })
}

// -- getters ---------------------------------------------------------------

unsafe extern "C" fn g_callback(slf: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: getter of our type.
    guard(|py| Ok(callback_part(py, unsafe { core_of(slf) }, true)))
}

unsafe extern "C" fn g_args(slf: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: getter of our type.
    guard(|py| Ok(callback_part(py, unsafe { core_of(slf) }, false)))
}

unsafe extern "C" fn g_cancelled(slf: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: getter of our type.
    guard(|py| Ok(bool_obj(py, unsafe { core_of(slf) }.is_cancelled())))
}

unsafe extern "C" fn g_source_traceback(
    slf: *mut ffi::PyObject,
    _: *mut c_void,
) -> *mut ffi::PyObject {
    guard(|py| {
        // SAFETY: getter of our type.
        let tb = unsafe { core_of(slf) }
            .source_traceback
            .as_ref()
            .map(|t| t.clone_ref(py));
        Ok(opt_obj(py, tb))
    })
}

unsafe extern "C" fn g_scheduled(slf: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    guard(|py| {
        // SAFETY: getter of our type.
        let core = unsafe { core_of(slf) };
        let s = core
            .timer
            .as_ref()
            .is_some_and(|t| t.scheduled.load(std::sync::atomic::Ordering::Relaxed));
        Ok(bool_obj(py, s))
    })
}

// -- repr, comparison, hash ---------------------------------------------------

unsafe extern "C" fn handle_repr(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    guard(|py| {
        // SAFETY: `slf` is a live object of our type, borrowed for the call.
        let obj = unsafe { Bound::from_borrowed_ptr(py, slf) };
        let s = pyhelpers::format_handle(&obj)?;
        Ok(s.into_pyobject(py)?.into_ptr())
    })
}

fn is_timer(py: Python<'_>, obj: *mut ffi::PyObject) -> bool {
    TIMER_TYPE
        .get(py)
        // SAFETY: obj is a valid object pointer; Py_TYPE only reads its header.
        .is_some_and(|t| unsafe { ffi::Py_TYPE(obj) } == t.bind(py).as_type_ptr())
}

/// asyncio's `TimerHandle.__eq__`: same deadline, callback, args and state.
fn timer_eq(py: Python<'_>, a: &HandleCore, b: &HandleCore) -> PyResult<bool> {
    if ptr::eq(a, b) {
        return Ok(true);
    }
    if a.when() != b.when() || a.is_cancelled() != b.is_cancelled() {
        return Ok(false);
    }
    match (a.callback_ref(py), b.callback_ref(py)) {
        (None, None) => Ok(true),
        (Some(x), Some(y)) => {
            let (xf, xa) = (x.func.into_bound(py), x.args.into_bound(py));
            let (yf, ya) = (y.func.into_bound(py), y.args.into_bound(py));
            Ok(xf.eq(&yf)? && xa.eq(&ya)?)
        }
        (Some(x), None) | (None, Some(x)) => {
            x.dispose(py);
            Ok(false)
        }
    }
}

unsafe extern "C" fn timer_richcompare(
    a: *mut ffi::PyObject,
    b: *mut ffi::PyObject,
    op: c_int,
) -> *mut ffi::PyObject {
    guard(|py| {
        if !is_timer(py, a) || !is_timer(py, b) {
            return Ok(py.NotImplemented().into_ptr());
        }
        // SAFETY: both checked to be TimerHandle objects.
        let (ca, cb) = unsafe { (core_of(a), core_of(b)) };
        let (x, y) = (ca.when().unwrap_or(f64::NAN), cb.when().unwrap_or(f64::NAN));
        let r = match op {
            ffi::Py_LT => x < y,
            ffi::Py_LE => x < y || timer_eq(py, ca, cb)?,
            ffi::Py_GT => x > y,
            ffi::Py_GE => x > y || timer_eq(py, ca, cb)?,
            ffi::Py_EQ => timer_eq(py, ca, cb)?,
            ffi::Py_NE => !timer_eq(py, ca, cb)?,
            _ => return Ok(py.NotImplemented().into_ptr()),
        };
        Ok(bool_obj(py, r))
    })
}

unsafe extern "C" fn timer_hash(slf: *mut ffi::PyObject) -> ffi::Py_hash_t {
    // asyncio hashes a TimerHandle by its deadline: hash(float) agrees.
    // SAFETY: `slf` is a TimerHandle object.
    let when = unsafe { core_of(slf) }.when().unwrap_or(0.0);
    let bits = when.to_bits();
    let h = (bits ^ (bits >> 32)) as ffi::Py_hash_t;
    if h == -1 {
        -2
    } else {
        h
    }
}

// -- type specs ------------------------------------------------------------

/// Static C tables that CPython keeps pointers into.
struct Static<T>(std::cell::UnsafeCell<T>);
// SAFETY: the tables are never written after compile time; CPython reads them.
unsafe impl<T> Sync for Static<T> {}

impl<T> Static<T> {
    const fn new(v: T) -> Self {
        Static(std::cell::UnsafeCell::new(v))
    }
    fn get(&self) -> *mut T {
        self.0.get()
    }
}

macro_rules! cstr {
    ($s:literal) => {
        concat!($s, "\0").as_ptr() as *const c_char
    };
}

macro_rules! noargs {
    ($name:literal, $f:ident, $doc:literal) => {
        ffi::PyMethodDef {
            ml_name: cstr!($name),
            ml_meth: ffi::PyMethodDefPointer { PyCFunction: $f },
            ml_flags: ffi::METH_NOARGS,
            ml_doc: cstr!($doc),
        }
    };
}

macro_rules! getter {
    ($name:literal, $f:ident) => {
        ffi::PyGetSetDef {
            name: cstr!($name),
            get: Some($f),
            set: None,
            doc: ptr::null(),
            closure: ptr::null_mut(),
        }
    };
}

const GETSET_END: ffi::PyGetSetDef = ffi::PyGetSetDef {
    name: ptr::null(),
    get: None,
    set: None,
    doc: ptr::null(),
    closure: ptr::null_mut(),
};

const M_CANCEL: ffi::PyMethodDef = noargs!(
    "cancel",
    m_cancel,
    "Cancel the callback; no-op if already cancelled or run."
);
const M_CANCELLED: ffi::PyMethodDef = noargs!(
    "cancelled",
    m_cancelled,
    "Whether the handle was cancelled."
);
const M_GET_CONTEXT: ffi::PyMethodDef = noargs!(
    "get_context",
    m_get_context,
    "The contextvars.Context the callback runs in."
);

static HANDLE_METHODS: Static<[ffi::PyMethodDef; 4]> = Static::new([
    M_CANCEL,
    M_CANCELLED,
    M_GET_CONTEXT,
    ffi::PyMethodDef::zeroed(),
]);

static TIMER_METHODS: Static<[ffi::PyMethodDef; 5]> = Static::new([
    M_CANCEL,
    M_CANCELLED,
    M_GET_CONTEXT,
    noargs!(
        "when",
        m_when,
        "The loop time at which the callback is scheduled."
    ),
    ffi::PyMethodDef::zeroed(),
]);

unsafe extern "C" fn g_context(slf: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: as m_get_context.
    unsafe { m_get_context(slf, ptr::null_mut()) }
}

unsafe extern "C" fn g_when(slf: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: as m_when.
    unsafe { m_when(slf, ptr::null_mut()) }
}

static HANDLE_GETSET: Static<[ffi::PyGetSetDef; 6]> = Static::new([
    getter!("_callback", g_callback),
    getter!("_args", g_args),
    getter!("_cancelled", g_cancelled),
    getter!("_context", g_context),
    getter!("_source_traceback", g_source_traceback),
    GETSET_END,
]);

static TIMER_GETSET: Static<[ffi::PyGetSetDef; 8]> = Static::new([
    getter!("_callback", g_callback),
    getter!("_args", g_args),
    getter!("_cancelled", g_cancelled),
    getter!("_context", g_context),
    getter!("_source_traceback", g_source_traceback),
    getter!("_when", g_when),
    getter!("_scheduled", g_scheduled),
    GETSET_END,
]);

static MEMBERS: Static<[ffi::PyMemberDef; 2]> = Static::new([
    ffi::PyMemberDef {
        name: cstr!("__weaklistoffset__"),
        type_code: ffi::Py_T_PYSSIZET,
        offset: offset_of!(HandleObject, weaklist) as ffi::Py_ssize_t,
        flags: ffi::Py_READONLY,
        doc: ptr::null(),
    },
    ffi::PyMemberDef {
        name: ptr::null(),
        type_code: 0,
        offset: 0,
        flags: 0,
        doc: ptr::null(),
    },
]);

macro_rules! slot {
    ($id:expr, $p:expr) => {
        ffi::PyType_Slot {
            slot: $id,
            pfunc: $p as *mut c_void,
        }
    };
}

const FLAGS: std::ffi::c_ulong = ffi::Py_TPFLAGS_DEFAULT
    | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION
    | ffi::Py_TPFLAGS_IMMUTABLETYPE;

fn make_type(
    py: Python<'_>,
    name: *const c_char,
    doc: *const c_char,
    timer: bool,
) -> PyResult<Py<PyType>> {
    let dealloc: unsafe extern "C" fn(*mut ffi::PyObject) = handle_dealloc;
    let repr: unsafe extern "C" fn(*mut ffi::PyObject) -> *mut ffi::PyObject = handle_repr;
    let mut slots = vec![
        slot!(ffi::Py_tp_dealloc, dealloc),
        slot!(ffi::Py_tp_repr, repr),
        slot!(ffi::Py_tp_doc, doc),
        slot!(ffi::Py_tp_members, MEMBERS.get()),
    ];
    if timer {
        let rc: ffi::richcmpfunc = timer_richcompare;
        let hash: ffi::hashfunc = timer_hash;
        slots.push(slot!(ffi::Py_tp_methods, TIMER_METHODS.get()));
        slots.push(slot!(ffi::Py_tp_getset, TIMER_GETSET.get()));
        slots.push(slot!(ffi::Py_tp_richcompare, rc));
        slots.push(slot!(ffi::Py_tp_hash, hash));
    } else {
        slots.push(slot!(ffi::Py_tp_methods, HANDLE_METHODS.get()));
        slots.push(slot!(ffi::Py_tp_getset, HANDLE_GETSET.get()));
    }
    slots.push(ffi::PyType_Slot {
        slot: 0,
        pfunc: ptr::null_mut(),
    });
    let mut spec = ffi::PyType_Spec {
        name,
        basicsize: size_of::<HandleObject>() as c_int,
        itemsize: 0,
        flags: FLAGS as std::ffi::c_uint,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: `spec` and `slots` are valid for the call (CPython copies what
    // it needs; the method/getset/member tables it keeps are statics).
    unsafe {
        let ty = ffi::PyType_FromSpec(&mut spec);
        if ty.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, ty)
            .cast_into::<PyType>()?
            .unbind())
    }
}

/// Creates both types and adds them to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let handle = make_type(
        py,
        cstr!("ferrio._ferrio.Handle"),
        cstr!("A scheduled callback (the asyncio.Handle of ferrio's loop)."),
        false,
    )?;
    let timer = make_type(
        py,
        cstr!("ferrio._ferrio.TimerHandle"),
        cstr!("A scheduled timed callback (the asyncio.TimerHandle of ferrio's loop)."),
        true,
    )?;
    m.add("Handle", handle.bind(py))?;
    m.add("TimerHandle", timer.bind(py))?;
    let _ = HANDLE_TYPE.set(py, handle);
    let _ = TIMER_TYPE.set(py, timer);
    Ok(())
}
