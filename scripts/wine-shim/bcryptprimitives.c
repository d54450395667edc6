/*
 * TEST-ONLY stand-in for bcryptprimitives.dll, for running portshare.exe under
 * Wine versions that lack it (Debian's Wine 8). Never ship this file or the DLL.
 *
 * Rust's standard library (1.78+) calls ProcessPrng from bcryptprimitives.dll
 * at start-up; without the DLL every Rust .exe dies with STATUS_DLL_NOT_FOUND
 * (c0000135). This DLL exports just ProcessPrng and fills the buffer with
 * RtlGenRandom (advapi32!SystemFunction036), which Wine implements.
 *
 * scripts/windows-smoke.sh builds it with
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c
 * and copies it beside portshare.exe in its temporary directory only (the
 * loader searches the executable's folder first).
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
