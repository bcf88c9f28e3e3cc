/* Arm MPS3 AN547 (Corstone-300 FPGA image, QEMU mps3-an547): CMSDK UART0, 32 MHz. */
#include "board.h"

#define UART0_DATA (*(volatile uint32_t *)0x49303000u)
#define UART0_STATE (*(volatile uint32_t *)0x49303004u)
#define UART0_CTRL (*(volatile uint32_t *)0x49303008u)
#define UART0_BAUDDIV (*(volatile uint32_t *)0x49303010u)

uint32_t board_clock_hz(void) { return 32000000u; }

void board_init(void)
{
    UART0_BAUDDIV = 32000000u / 115200u;
    UART0_CTRL = 0x3u; /* TX, RX enable */
}

void board_uart_write(uint8_t byte)
{
    while (UART0_STATE & 0x1u) {
    }
    UART0_DATA = byte;
}

int board_uart_read_nonblocking(void)
{
    return (UART0_STATE & 0x2u) ? (int)(UART0_DATA & 0xFFu) : -1;
}
