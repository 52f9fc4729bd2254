//! Hand-written method descriptors: a `PyMethodDef` that can live in a
//! `static`, and installing a table of them on a type.
//!
//! Used where PyO3's generated methods cost more than the work they wrap
//! (the loop's `call_soon` family, event_loop/fastcall.rs; the transport
//! wrappers' `write`/`sendto`, transports/fastmethods.rs). Every function
//! in such a table is `METH_FASTCALL | METH_KEYWORDS` and runs its body
//! behind boundary.rs's guard.

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// A `PyMethodDef` that may live in a `static` (its pointers are to static
/// strings and functions, never mutated after install).
pub(crate) struct MethodDef(pub(crate) std::cell::UnsafeCell<ffi::PyMethodDef>);

// SAFETY: the definitions are written only at compile time; CPython only
// reads them (it keeps a pointer for the descriptor's lifetime).
unsafe impl Sync for MethodDef {}

/// `method_def!("name", function, "doc")`: a `METH_FASTCALL |
/// METH_KEYWORDS` [`MethodDef`] (the doc may start with a text signature,
/// `name($self, ...)\n--\n\n`).
macro_rules! method_def {
    ($name:literal, $func:ident, $doc:literal) => {
        $crate::methoddef::MethodDef(std::cell::UnsafeCell::new(pyo3::ffi::PyMethodDef {
            ml_name: concat!($name, "\0").as_ptr() as *const std::ffi::c_char,
            ml_meth: pyo3::ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: $func,
            },
            ml_flags: pyo3::ffi::METH_FASTCALL | pyo3::ffi::METH_KEYWORDS,
            ml_doc: concat!($doc, "\0").as_ptr() as *const std::ffi::c_char,
        }))
    };
}
pub(crate) use method_def;

/// Sets each definition on `ty` as a method descriptor of `ty` (CPython
/// then checks that `self` is an instance of `ty` before every call).
pub(crate) fn install(ty: &Bound<'_, PyType>, defs: &'static [MethodDef]) -> PyResult<()> {
    let py = ty.py();
    for def in defs {
        // SAFETY: `def` is a static PyMethodDef that outlives the type; the
        // type pointer is valid; PyDescr_NewMethod returns a new reference.
        let descr = unsafe {
            let d = ffi::PyDescr_NewMethod(ty.as_type_ptr(), def.0.get());
            if d.is_null() {
                return Err(PyErr::fetch(py));
            }
            Bound::from_owned_ptr(py, d)
        };
        // SAFETY: ml_name is a NUL-terminated static string.
        let name = unsafe { std::ffi::CStr::from_ptr((*def.0.get()).ml_name) }
            .to_str()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        // Heap types (PyO3's and Python classes) are mutable: setattr on
        // the type works and invalidates the method cache.
        ty.setattr(name, descr)?;
    }
    Ok(())
}
