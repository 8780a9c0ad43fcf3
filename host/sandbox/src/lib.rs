//! WebAssembly processor sandbox: runs guest components under time and memory limits.
