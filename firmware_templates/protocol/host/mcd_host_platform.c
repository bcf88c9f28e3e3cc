/* Host "board" for testing the real protocol code without a simulator: the UART is a TCP socket.
 * Like QEMU's `-serial tcp:...,server=on,wait=on`, it listens, prints "MCD_HOST_PORT=<port>" on stdout,
 * and only starts once the host has connected, so no boot output is lost. EOF on the socket exits 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mcd_platform.h"

static int conn = -1;
static uint8_t txbuf[4096];
static size_t txlen;
static uint8_t rxbuf[4096];
static size_t rxpos, rxlen;

static void flush_tx(void)
{
    size_t off = 0;
    while (off < txlen) {
        ssize_t n = send(conn, txbuf + off, txlen - off, MSG_NOSIGNAL);
        if (n <= 0) mcd_exit(0);
        off += (size_t)n;
    }
    txlen = 0;
}

void mcd_platform_init(void)
{
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const char *p = getenv("MCD_HOST_PORT");
    a.sin_port = htons((uint16_t)(p ? atoi(p) : 0));
    if (bind(srv, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(srv, 1) != 0) {
        perror("mcd host platform: bind/listen");
        exit(3);
    }
    socklen_t alen = sizeof(a);
    getsockname(srv, (struct sockaddr *)&a, &alen);
    printf("MCD_HOST_PORT=%d\n", ntohs(a.sin_port));
    fflush(stdout);
    conn = accept(srv, NULL, NULL);
    close(srv);
    if (conn < 0) exit(3);
}

void mcd_uart_putc(uint8_t c)
{
    if (txlen == sizeof(txbuf)) flush_tx();
    txbuf[txlen++] = c;
}

static int fill(int wait)
{
    flush_tx();
    if (rxpos < rxlen) return 1;
    ssize_t n = recv(conn, rxbuf, sizeof(rxbuf), wait ? 0 : MSG_DONTWAIT);
    if (n == 0) mcd_exit(0); /* host closed the link: the "board" powers off */
    if (n < 0) {
        if (!wait) return 0;
        mcd_exit(0);
    }
    rxpos = 0;
    rxlen = (size_t)n;
    return 1;
}

int mcd_uart_getc(void)
{
    fill(1);
    return rxbuf[rxpos++];
}

int mcd_uart_try_getc(void) { return fill(0) ? rxbuf[rxpos++] : -1; }

uint32_t mcd_timer_read(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

uint64_t mcd_timer_elapsed(uint32_t start, uint32_t end) { return (uint32_t)(end - start); }
const char *mcd_timer_name(void) { return "host-ns"; }
uint32_t mcd_cpu_clock_hz(void) { return 1000000000u; }
void mcd_stack_paint(void) {}
uint32_t mcd_stack_used(void) { return 0; } /* unknown on the host */
uint32_t mcd_stack_size(void) { return 0; }

void mcd_exit(int code)
{
    if (conn >= 0 && txlen) {
        send(conn, txbuf, txlen, MSG_NOSIGNAL);
        txlen = 0;
    }
    exit(code);
}
