/* Host device app: the same sequence as the firmware app in protocol mode. */
#include "mcd_platform.h"
#include "mcd_protocol.h"
#include "mcd_runtime.h"

static void log_line(const char *s)
{
    while (*s) mcd_uart_putc((uint8_t)*s++);
}

int main(void)
{
    mcd_platform_init();
    log_line("mcudeploy host device: booting\r\n");
    if (mcd_runtime_init() != 0) {
        log_line("runtime init failed\r\n");
        mcd_exit(4);
    }
    mcd_protocol_serve();
    return 0;
}
