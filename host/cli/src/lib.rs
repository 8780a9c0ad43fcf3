//! The otsrep command line: replicate, serve, status, verify, demo.
