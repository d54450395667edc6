//! The Windows error numbers portshare reports, named as in Windows'
//! `winerror.h`, and the text Windows prints for each.
//!
//! portshare stands in for HTTP.sys and `netsh http`, so it reports failures
//! the way Windows does: the netsh-compatible commands print `Error: N` and
//! the system message for N, the control channel answers
//! `{"error": {"code": N, …}}`, and the process exit code is N itself (modulo
//! 256 on Unix, never 0). Those numbers are part of what scripts and tests
//! observe, so they are named here, in one place, and every module uses the
//! names instead of bare numbers.
//!
//! The numbers are `u32` (Windows' `DWORD`); where an [`std::io::Error`]'s
//! `raw_os_error()` (an `i32`) is compared, the code casts with `as i32`.
//!
//! This module imports nothing from the crate: anything may use it.

/// 2: the thing to delete or update does not exist (no such binding,
/// reservation, timeout; no control socket configured).
pub const ERROR_FILE_NOT_FOUND: u32 = 2;
/// 5: no URL reservation lets the user register the prefix; a store that may
/// not be read.
pub const ERROR_ACCESS_DENIED: u32 = 5;
/// 13: the store's contents could not be parsed or are invalid.
pub const ERROR_INVALID_DATA: u32 = 13;
/// 31: any other failure (I/O, the control channel, the server's own hooks).
pub const ERROR_GEN_FAILURE: u32 = 31;
/// 1332: `urlacl user=` names no account on this machine.
pub const ERROR_NONE_MAPPED: u32 = 1332;
/// 32: a registration's port is held by another program.
pub const ERROR_SHARING_VIOLATION: u32 = 32;
/// 50: a command this server (or platform) does not offer.
pub const ERROR_NOT_SUPPORTED: u32 = 50;
/// 87: a parameter or URL prefix is refused.
pub const ERROR_INVALID_PARAMETER: u32 = 87;
/// 183: the binding, reservation or registration exists already.
pub const ERROR_ALREADY_EXISTS: u32 = 183;
/// 231: every instance of the control pipe is connected (Windows only).
pub const ERROR_PIPE_BUSY: u32 = 231;
/// 1056: `service start` of a service that is running.
pub const ERROR_SERVICE_ALREADY_RUNNING: u32 = 1056;
/// 1062: no server is running (`service stop` of a stopped service; the
/// control channel has nobody listening).
pub const ERROR_SERVICE_NOT_ACTIVE: u32 = 1062;
/// 1063: `service run` started from a console instead of by the SCM.
pub const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: u32 = 1063;
/// 1312: the certificate is not in the store or has no private key (what
/// `netsh http add sslcert` reports).
pub const ERROR_NO_SUCH_LOGON_SESSION: u32 = 1312;

/// The Windows system message (`FormatMessage` text) for an error number,
/// printed on the line after `Error: N`.
pub fn system_message(code: u32) -> &'static str {
    match code {
        ERROR_FILE_NOT_FOUND => "The system cannot find the file specified.",
        ERROR_ACCESS_DENIED => "Access is denied.",
        ERROR_INVALID_DATA => "The data is invalid.",
        ERROR_GEN_FAILURE => "A device attached to the system is not functioning.",
        ERROR_NONE_MAPPED => "No mapping between account names and security IDs was done.",
        ERROR_SHARING_VIOLATION => {
            "The process cannot access the file because it is being used by another process."
        }
        ERROR_NOT_SUPPORTED => "The request is not supported.",
        ERROR_INVALID_PARAMETER => "The parameter is incorrect.",
        ERROR_ALREADY_EXISTS => "Cannot create a file when that file already exists.",
        ERROR_PIPE_BUSY => "All pipe instances are busy.",
        ERROR_SERVICE_ALREADY_RUNNING => "An instance of the service is already running.",
        ERROR_SERVICE_NOT_ACTIVE => "The service has not been started.",
        ERROR_FAILED_SERVICE_CONTROLLER_CONNECT => {
            "The service process could not connect to the service controller."
        }
        ERROR_NO_SUCH_LOGON_SESSION => {
            "A specified logon session does not exist. It may already have been terminated."
        }
        _ => "Unknown error.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_error_has_its_message() {
        for code in [
            ERROR_FILE_NOT_FOUND,
            ERROR_ACCESS_DENIED,
            ERROR_INVALID_DATA,
            ERROR_GEN_FAILURE,
            ERROR_SHARING_VIOLATION,
            ERROR_NONE_MAPPED,
            ERROR_NOT_SUPPORTED,
            ERROR_INVALID_PARAMETER,
            ERROR_ALREADY_EXISTS,
            ERROR_PIPE_BUSY,
            ERROR_SERVICE_ALREADY_RUNNING,
            ERROR_SERVICE_NOT_ACTIVE,
            ERROR_FAILED_SERVICE_CONTROLLER_CONNECT,
            ERROR_NO_SUCH_LOGON_SESSION,
        ] {
            assert_ne!(system_message(code), "Unknown error.", "{code}");
        }
        assert_eq!(system_message(4), "Unknown error.");
    }
}
