//! MVVM's runtime.
