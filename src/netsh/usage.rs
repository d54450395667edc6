//! The help texts `COMMAND ?` / `COMMAND help` print, one per `http`
//! command, in netsh's layout (Usage, Parameters with a Tag/Value table,
//! Remarks, Examples).
//!
//! Kept apart from the commands because they are long, and because netsh
//! prints them without touching the configuration: [`super::help`] answers
//! before any store is loaded. The `add cacheparam` and `add iplisten` texts
//! follow netsh's own (Windows 10, as colorconsole.de and Microsoft's
//! command reference quote them); the others are written in the same
//! layout from netsh's parameter lists, with portshare's differences said
//! in the Remarks where there are any.

/// `(verb, table, text)` for every command.
pub(crate) const COMMAND_USAGE: &[(&str, &str, &str)] = &[
    ("add", "cacheparam", ADD_CACHEPARAM),
    ("add", "iplisten", ADD_IPLISTEN),
    ("add", "sslcert", ADD_SSLCERT),
    ("add", "timeout", ADD_TIMEOUT),
    ("add", "urlacl", ADD_URLACL),
    ("delete", "cache", DELETE_CACHE),
    ("delete", "iplisten", DELETE_IPLISTEN),
    ("delete", "sslcert", DELETE_SSLCERT),
    ("delete", "timeout", DELETE_TIMEOUT),
    ("delete", "urlacl", DELETE_URLACL),
    ("flush", "logbuffer", FLUSH_LOGBUFFER),
    ("show", "cacheparam", SHOW_CACHEPARAM),
    ("show", "cachestate", SHOW_CACHESTATE),
    ("show", "iplisten", SHOW_IPLISTEN),
    ("show", "servicestate", SHOW_SERVICESTATE),
    ("show", "setting", SHOW_SETTING),
    ("show", "sslcert", SHOW_SSLCERT),
    ("show", "timeout", SHOW_TIMEOUT),
    ("show", "urlacl", SHOW_URLACL),
    ("update", "sslcert", UPDATE_SSLCERT),
];

/// The help text of `verb table` (both lowercase), if that is a command.
pub(crate) fn command_usage(verb: &str, table: &str) -> Option<&'static str> {
    COMMAND_USAGE
        .iter()
        .find(|(v, t, _)| *v == verb && *t == table)
        .map(|(_, _, text)| *text)
}

/// `dump ?`.
pub(crate) const DUMP: &str = "
Usage: dump

Remarks: Displays a configuration script: the netsh http commands that
         recreate the SSL bindings, URL reservations, timeouts, IP listen
         list and cache parameters. Run the script with 'netsh exec FILE'.

";

const ADD_CACHEPARAM: &str = "
Usage: add cacheparam [type=]cacherangechunksize|maxcacheresponsesize
             [value=]<ulong>

Parameters:

        Tag                       Value
        type                    - Type of parameter for setting.
        value                   - Value (in bytes). If value is in
                                  hex, then add the prefix 0x.

Remarks: Adds HTTP service cache parameter.

Examples:

        add cacheparam type=maxcacheresponsesize value=524288
        add cacheparam type=cacherangechunksize value=131072

";

const ADD_IPLISTEN: &str = "
Usage: add iplisten [ipaddress=]<IPv4 or IPv6 address>

Parameters:

    Tag              Value
    ipaddress      - IPv4 or IPv6 address to be added to the IP listen list.
                     The IP listen list is used to scope the list of addresses
                     to which the HTTP service binds. \"0.0.0.0\" means any IPv4
                     address and \"::\" means any IPv6 address.

Remarks: Adds a new IP address to the IP listen list. This does not include
         the port number.

Examples:

    add iplisten ipaddress=fe80::1
    add iplisten ipaddress=1.1.1.1
    add iplisten ipaddress=0.0.0.0
    add iplisten ipaddress=::

";

const ADD_SSLCERT: &str = "
Usage: add sslcert hostnameport=<name:port> | ipport=<ipaddr:port> | ccs=<port>
             [certhash=]<string> [appid=]<GUID> [[certstorename=]<string>
             verifyclientcertrevocation=enable|disable
             verifyrevocationwithcachedclientcertonly=enable|disable
             usagecheck=enable|disable
             revocationfreshnesstime=<u-int>
             urlretrievaltimeout=<u-int>
             sslctlidentifier=<string>
             sslctlstorename=<string>
             dsmapperusage=enable|disable
             clientcertnegotiation=enable|disable
             reject=enable|disable
             disablehttp2=enable|disable
             disablequic=enable|disable
             disablelegacytls=enable|disable
             disabletls12=enable|disable
             disabletls13=enable|disable
             disableocspstapling=enable|disable
             enabletokenbinding=enable|disable
             logextendedevents=enable|disable
             enablesessionticket=enable|disable
             disablesessionid=enable|disable]

Parameters:

    Tag                     Value
    ipport                - IP address and port for the binding.
    hostnameport          - Unicode hostname and port for binding.
    ccs                   - Central Certificate Store binding.
    certhash              - The SHA hash of the certificate. This hash is
                            20 bytes long and specified as a hex string.
    appid                 - GUID to identify the owning application.
    certstorename         - Store name for the certificate. Defaults to MY.
                            Certificate must be stored in the local machine
                            context.
    verifyclientcertrevocation - Turns on/off verification of revocation of
                            client certificates.
    verifyrevocationwithcachedclientcertonly - Turns on/off usage of only
                            cached client certificate for revocation checking.
    usagecheck            - Turns on/off usage check. Default is enabled.
    revocationfreshnesstime - Time interval to check for an updated
                            certificate revocation list (CRL) (in seconds).
    urlretrievaltimeout   - Timeout on attempt to retrieve certificate
                            revocation list for the remote URL (in
                            milliseconds).
    sslctlidentifier      - List the certificate issuers that can be trusted.
    sslctlstorename       - Store name under LOCAL_MACHINE where
                            SslCtlIdentifier is stored.
    dsmapperusage         - Turns on/off DS mappers. Default is disabled.
    clientcertnegotiation - Turns on/off negotiation of certificate.
                            Default is disabled.
    reject                - Turns on/off reject mode. Default is disabled.
    disablehttp2          - Turns on/off HTTP2. Default is disabled.
    disablequic           - Turns on/off QUIC. Default is disabled.
    disablelegacytls      - Turns on/off legacy TLS versions.
    disabletls12          - Turns on/off TLS1.2. Default is disabled.
    disabletls13          - Turns on/off TLS1.3. Default is disabled.
    disableocspstapling   - Turns on/off OCSP stapling. Default is disabled.
    enabletokenbinding    - Turns on/off token binding. Default is disabled.
    logextendedevents     - Turns on/off logging of extended events.
    enablesessionticket   - Turns on/off TLS session ticket.
    disablesessionid      - Turns on/off TLS session ID.

Remarks: Adds a new SSL server certificate binding and corresponding client
         certificate policies for an IP address or hostname and a port.
         In portshare the certificate is one in the certificate folder
         ('portshare cert list' shows the thumbprints).

Examples:

    add sslcert ipport=1.1.1.1:443 certhash=0102030405060708090A0B0C0D0E0F1011121314 appid={00112233-4455-6677-8899-AABBCCDDEEFF}
    add sslcert hostnameport=www.contoso.com:443 certhash=0102030405060708090A0B0C0D0E0F1011121314 appid={00112233-4455-6677-8899-AABBCCDDEEFF} certstorename=MY
    add sslcert ccs=443 appid={00112233-4455-6677-8899-AABBCCDDEEFF}

";

const UPDATE_SSLCERT: &str = "
Usage: update sslcert hostnameport=<name:port> | ipport=<ipaddr:port> | ccs=<port>
             [certhash=]<string> [appid=]<GUID> [[certstorename=]<string>
             (and the other parameters of 'add sslcert')]

Parameters:

    Tag                     Value
    ipport                - IP address and port for the binding.
    hostnameport          - Unicode hostname and port for binding.
    ccs                   - Central Certificate Store binding.
    certhash              - The SHA hash of the certificate. This hash is
                            20 bytes long and specified as a hex string.
    appid                 - GUID to identify the owning application.
    (the flags are those of 'add sslcert ?')

Remarks: Updates an SSL server certificate binding and corresponding client
         certificate policies for an IP address or hostname and a port.

Examples:

    update sslcert ipport=1.1.1.1:443 certhash=0102030405060708090A0B0C0D0E0F1011121314 appid={00112233-4455-6677-8899-AABBCCDDEEFF}

";

const ADD_TIMEOUT: &str = "
Usage: add timeout [timeouttype=]idleconnectiontimeout|headerwaittimeout
                   [value=]<u-short>

Parameters:

    Tag              Value
    timeouttype    - Type of timeout for setting.
    value          - Value of timeout (in seconds).

Remarks: Adds a global timeout to the service.

Examples:

    add timeout timeouttype=idleconnectiontimeout value=120
    add timeout timeouttype=headerwaittimeout value=30

";

const ADD_URLACL: &str = "
Usage: add urlacl [url=]<string> [ [user=]<string>
                  [[listen=]yes|no [delegate=]yes|no]
                  | [sddl=]<string> ]

Parameters:

    Tag              Value
    url            - The fully qualified URL.
    user           - The user or user-group name
    listen         - One of the following values:
                     yes: Grant the user the right to register URLs. This
                          is the default value.
                     no:  Deny the user the right to register URLs.
    delegate       - One of the following values:
                     yes: Grant the user the right to delegate URLs
                     no:  Deny the user the right to delegate URLs. This is
                          the default value.
    sddl           - SDDL string that describes the DACL.

Remarks: Adds a URL reservation entry. This command reserves the URL for
         non-administrator users and accounts. The DACL can be specified
         by using an NT account name with the listen and delegate
         parameters or by using an SDDL string.

Examples:

    add urlacl url=http://+:80/MyUri user=DOMAIN\\user
    add urlacl url=http://www.contoso.com:80/MyUri user=DOMAIN\\user listen=yes
    add urlacl url=http://www.contoso.com:80/MyUri user=DOMAIN\\user delegate=no
    add urlacl url=http://+:80/MyUri sddl=...

";

const DELETE_CACHE: &str = "
Usage: delete cache [[url=]<string>] [[recursive=]yes|no]

Parameters:

    Tag              Value
    url            - Fully qualified URL that you want to delete.
    recursive      - Removes all entries under the url cache.
                     yes: Remove all entries
                     no: Do not remove all entries

Remarks: Deletes all entries or a specified entry from the HTTP service
         kernel URI cache. In portshare this is the built-in site's
         in-memory file cache; the server must be running.

Examples:

    delete cache
    delete cache url=http://www.contoso.com:80/myresource/ recursive=yes

";

const DELETE_IPLISTEN: &str = "
Usage: delete iplisten [ipaddress=]<IPv4 or IPv6 address>

Parameters:

    Tag              Value
    ipaddress      - IPv4 or IPv6 address to be deleted from the IP listen
                     list. The IP listen list is used to scope the list of
                     addresses to which the HTTP service binds. \"0.0.0.0\"
                     means any IPv4 address and \"::\" means any IPv6 address.

Remarks: Deletes an IP address from the IP listen list. This does not
         include the port number.

Examples:

    delete iplisten ipaddress=fe80::1
    delete iplisten ipaddress=1.1.1.1
    delete iplisten ipaddress=0.0.0.0
    delete iplisten ipaddress=::

";

const DELETE_SSLCERT: &str = "
Usage: delete sslcert [ipport=]<IP Address:port> | hostnameport=<name:port> | ccs=<port>

Parameters:

    Tag              Value
    ipport         - The IPv4 or IPv6 address and port for which the SSL
                     certificate bindings will be deleted.
    hostnameport   - Unicode hostname and port for the binding.
    ccs            - Central Certificate Store port for the binding.

Remarks: Deletes SSL server certificate bindings and the corresponding client
         certificate policies for an IP address or hostname and a port.

Examples:

    delete sslcert ipport=1.1.1.1:443
    delete sslcert ipport=[fe80::1]:443
    delete sslcert hostnameport=www.contoso.com:443
    delete sslcert ccs=443

";

const DELETE_TIMEOUT: &str = "
Usage: delete timeout [timeouttype=]idleconnectiontimeout|headerwaittimeout

Parameters:

    Tag              Value
    timeouttype    - Type of timeout for setting.

Remarks: Deletes a global timeout and makes the service use the default
         value.

Examples:

    delete timeout timeouttype=idleconnectiontimeout
    delete timeout timeouttype=headerwaittimeout

";

const DELETE_URLACL: &str = "
Usage: delete urlacl [url=]<string>

Parameters:

    Tag              Value
    url            - The fully qualified URL that you want to delete.

Remarks: Deletes URL reservations.

Examples:

    delete urlacl url=http://+:80/MyUri
    delete urlacl url=http://www.contoso.com:80/MyUri

";

const FLUSH_LOGBUFFER: &str = "
Usage: flush logbuffer

Remarks: Flushes the internal buffers for the logfiles. In portshare the
         running server writes out access.log and httperr.log.

";

const SHOW_CACHEPARAM: &str = "
Usage: show cacheparam

Remarks: Shows the HTTP service cache parameters.

Examples:

    show cacheparam

";

const SHOW_CACHESTATE: &str = "
Usage: show cachestate [[url=]<string>]

Parameters:

    Tag              Value
    url            - Fully qualified URL. If unspecified, implies all
                     URLs. The URL could also be a prefix to registered URLs

Remarks: This command lists all resources and their associated properties
         that are cached in HTTP response cache or displays a single
         resource and its associated properties.

Examples:

    show cachestate url=http://www.contoso.com:80/myresource
    show cachestate

";

const SHOW_IPLISTEN: &str = "
Usage: show iplisten

Remarks: Displays all the IP addresses in the IP listen list. The IP listen
         list is used to scope the list of addresses to which the HTTP
         service binds. \"0.0.0.0\" means any IPv4 address and \"::\" means
         any IPv6 address.

Examples:

    show iplisten

";

const SHOW_SERVICESTATE: &str = "
Usage: show servicestate [[view=]session|requestq] [[verbose=]yes|no]

Parameters:

    Tag              Value
    view           - Whether to view a snapshot of the HTTP service state
                     based on the server session or the request queues.
    verbose        - Whether to display verbose information that also
                     shows property information.

Remarks: Displays a snapshot of the HTTP service.

Examples:

    show servicestate view=\"session\"
    show servicestate view=\"requestq\"

";

const SHOW_SETTING: &str = "
Usage: show setting

Remarks: Displays the values of the HTTP service settings.

Examples:

    show setting

";

const SHOW_SSLCERT: &str = "
Usage: show sslcert [ipport=<IP Address:port> | hostnameport=<name:port> | ccs=<port>]

Parameters:

    Tag              Value
    ipport         - The IPv4 or IPv6 address and port for which the SSL
                     certificate bindings will be displayed. If not
                     specified, all bindings are displayed.
    hostnameport   - Unicode hostname and port for the binding.
    ccs            - Central Certificate Store port for the binding.

Remarks: Displays SSL server certificate bindings and the corresponding
         client certificate policies for an IP address or hostname and a
         port.

Examples:

    show sslcert ipport=[fe80::1]:443
    show sslcert ipport=1.1.1.1:443
    show sslcert hostnameport=www.contoso.com:443
    show sslcert ccs=443
    show sslcert

";

const SHOW_TIMEOUT: &str = "
Usage: show timeout

Remarks: Displays, in seconds, the timeout values of the HTTP service.

Examples:

    show timeout

";

const SHOW_URLACL: &str = "
Usage: show urlacl [[url=]<string>]

Parameters:

    Tag              Value
    url            - The fully qualified URL. If unspecified, implies all
                     URLs.

Remarks: Displays the discretionary access control lists (DACLs) for the
         specified reserved URL or all reserved URLs.

Examples:

    show urlacl url=http://+:80/MyUri
    show urlacl url=http://www.contoso.com:80/MyUri
    show urlacl

";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_is_netsh_shaped() {
        for (verb, table, text) in COMMAND_USAGE {
            assert!(
                text.starts_with(&format!("\nUsage: {verb} {table}")),
                "{verb} {table}"
            );
            assert!(text.ends_with("\n\n"), "{verb} {table}");
            assert!(text.contains("\nRemarks: "), "{verb} {table}");
        }
    }
}
