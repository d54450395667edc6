#!/bin/sh
# portshare daily maintenance (a CGI script; POSIX sh, no bashisms).
#
# The server requests it once a day (GLOBAL.INI: daily_maintenance=/maintenance.cgi,
# with "[cgi] .cgi = direct" and this file executable). It deletes files in the
# log folder that are older than MAINTENANCE_MAX_AGE_DAYS days (default 30) and
# touches nothing else. The live logs (access.log, httperr.log) are never removed:
# the server keeps them open.
#
# Settings, first found wins:
#   MAINTENANCE_MAX_AGE_DAYS   environment (when run by hand; the server passes
#                              scripts only the CGI variables, not its environment)
#   ?max_age_days=N            query string, e.g. daily_maintenance=/maintenance.cgi?max_age_days=14
#   30
# The log folder comes from PORTSHARE_LOG_DIR, which the server sets from log_dir
# (an absolute path). When it cannot do its job the script answers 500 with a
# first line starting "error:", and the run is recorded as failed.
#
# Only answers requests from this machine (the scheduler's, or curl on localhost).

text_header() {
    printf 'Status: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' "$1"
}

case ${REMOTE_ADDR-} in
    '' | 127.* | ::1) ;;
    *)
        text_header '403 Forbidden'
        echo "maintenance runs only for requests from this machine"
        exit 0
        ;;
esac

max_age=${MAINTENANCE_MAX_AGE_DAYS-}
if [ -z "$max_age" ]; then
    # max_age_days=N anywhere in the query string.
    max_age=$(printf '%s\n' "&${QUERY_STRING-}&" | sed -n 's/.*&max_age_days=\([0-9][0-9]*\)&.*/\1/p')
fi
max_age=${max_age:-30}
case $max_age in
    '' | *[!0-9]* | 0)
        text_header '400 Bad Request'
        echo "the maximum age must be a whole number of days, 1 or more (got '$max_age')"
        exit 0
        ;;
esac

log_dir=${PORTSHARE_LOG_DIR-}
if [ -z "$log_dir" ]; then
    text_header '200 OK'
    echo "no log folder (log_dir is empty, logs go to stdout): nothing to do"
    exit 0
fi
# A missing (or relative) log folder means the job cannot be done: say so with a
# failure status and the "error:" marker, so the run is not recorded as success.
case $log_dir in
    /* | [A-Za-z]:[\\/]*) ;;
    *)
        text_header '500 Internal Server Error'
        echo "error: the log folder '$log_dir' is not an absolute path; cannot tell which folder to clean"
        exit 0
        ;;
esac
if [ ! -d "$log_dir" ]; then
    text_header '500 Internal Server Error'
    echo "error: log folder $log_dir does not exist; check log_dir in GLOBAL.INI"
    exit 0
fi
text_header '200 OK'

# find -mtime +N matches whole days of age greater than N, so +(days-1) means
# "at least <days> days old". "$log_dir/." with ! -name . -prune stays in the
# folder itself (POSIX find has no -maxdepth).
removed=$(
    find "$log_dir/." ! -name . -prune -type f -mtime +"$((max_age - 1))" \
        ! -name access.log ! -name httperr.log \
        -exec sh -c 'for f do rm -f -- "$f" && printf "%s\n" "${f##*/}"; done' sh {} +
)
count=0
if [ -n "$removed" ]; then
    count=$(printf '%s\n' "$removed" | wc -l | tr -d ' ')
    printf '%s\n' "$removed" | sed 's/^/removed /'
fi
if [ "$count" = 1 ]; then files=file; else files=files; fi
echo "removed $count $files older than $max_age days from $log_dir"
