//! End-to-end tests: the built `cairn` binary in a cleared environment.
//!
//! Repositories are created under `CAIRN_TEST_SHARE` when it is set (CI points it at a mounted
//! SMB share), otherwise in a temporary directory.

mod backup;
mod check;
mod compat;
mod crash;
mod encryption;
mod errors;
mod forget;
mod harness;
mod mssql;
mod prune;
mod repair;
mod report;
mod restore;
mod run;
