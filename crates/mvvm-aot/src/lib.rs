//! MVVM's ahead-of-time compiler.
#![forbid(unsafe_code)]
