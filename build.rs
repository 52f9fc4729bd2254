//! Emits PyO3's configuration cfgs (notably `Py_GIL_DISABLED` on a
//! free-threaded interpreter), which src/gilcell.rs selects on.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
