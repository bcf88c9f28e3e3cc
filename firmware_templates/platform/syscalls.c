/* newlib hooks for bare metal: stdout/stderr go to the UART, the heap lies between linker symbols. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "mcd_platform.h"

extern uint8_t __HeapBase, __HeapLimit;
void *__dso_handle = 0; /* static C++ objects register destructors against it */

void _init(void) {}
void _fini(void) {}

void *_sbrk(ptrdiff_t incr)
{
    static uint8_t *brk = &__HeapBase;
    if (incr < 0 || (size_t)(&__HeapLimit - brk) < (size_t)incr) {
        errno = ENOMEM;
        return (void *)-1;
    }
    uint8_t *prev = brk;
    brk += incr;
    return prev;
}

int _write(int fd, const char *buf, int len)
{
    if (fd != 1 && fd != 2) {
        errno = EBADF;
        return -1;
    }
    for (int i = 0; i < len; ++i) {
        mcd_uart_putc((uint8_t)buf[i]);
    }
    return len;
}

int _read(int fd, char *buf, int len)
{
    if (fd != 0 || len <= 0) {
        return 0;
    }
    buf[0] = (char)mcd_uart_getc();
    return 1;
}

int _close(int fd) { (void)fd; return -1; }
int _fstat(int fd, struct stat *st) { (void)fd; st->st_mode = S_IFCHR; return 0; }
int _isatty(int fd) { (void)fd; return 1; }
int _lseek(int fd, int off, int whence) { (void)fd; (void)off; (void)whence; return 0; }
int _getpid(void) { return 1; }
int _kill(int pid, int sig) { (void)pid; (void)sig; errno = EINVAL; return -1; }
void _exit(int code) { mcd_exit(code); }
