//! The sans-IO switch.
