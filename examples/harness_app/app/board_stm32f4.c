/* STM32F405 (Netduino Plus 2, QEMU netduinoplus2): USART1 on PA9/PA10, 115200 baud from APB2.
 * A real board would bring the PLL up to 168 MHz first (see the STM32Cube SystemClock_Config);
 * QEMU runs the core at 168 MHz from reset and ignores the RCC. */
#include "board.h"

#define RCC_AHB1ENR (*(volatile uint32_t *)0x40023830u)
#define RCC_APB2ENR (*(volatile uint32_t *)0x40023844u)
#define GPIOA_MODER (*(volatile uint32_t *)0x40020000u)
#define GPIOA_AFRH (*(volatile uint32_t *)0x40020024u)
#define USART1_SR (*(volatile uint32_t *)0x40011000u)
#define USART1_DR (*(volatile uint32_t *)0x40011004u)
#define USART1_BRR (*(volatile uint32_t *)0x40011008u)
#define USART1_CR1 (*(volatile uint32_t *)0x4001100Cu)
#define APB2_HZ 84000000u

uint32_t board_clock_hz(void) { return 168000000u; }

void board_init(void)
{
    RCC_AHB1ENR |= 1u << 0; /* GPIOA */
    RCC_APB2ENR |= 1u << 4; /* USART1 */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 18)) | (0xAu << 18);          /* PA9, PA10: alternate */
    GPIOA_AFRH = (GPIOA_AFRH & ~(0xFFu << 4)) | (0x77u << 4);            /* AF7 = USART1 */
    USART1_BRR = (APB2_HZ + 115200u / 2u) / 115200u;
    USART1_CR1 = (1u << 13) | (1u << 3) | (1u << 2);                     /* UE, TE, RE */
}

void board_uart_write(uint8_t byte)
{
    while (!(USART1_SR & (1u << 7))) {
    }
    USART1_DR = byte;
}

int board_uart_read_nonblocking(void)
{
    return (USART1_SR & (1u << 5)) ? (int)(USART1_DR & 0xFFu) : -1;
}
