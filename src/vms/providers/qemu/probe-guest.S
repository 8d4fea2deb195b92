/* The accelerator probe guest: the whole firmware of a machine that switches to 64-bit long mode and
   reports through QEMU's isa-debug-exit port (0xf4), which ends QEMU with status (0x2a << 1) | 1 = 85.
   Long mode is where guests hang on the broken KVM of these machines; a real-mode loop alone still runs.
   Runs at 0xF0000 (the BIOS shadow; linked at 0, absolute addresses add 0xf0000); the reset vector at 0xFFFF0 jumps to start. */
        .code16
        .globl start
start:  cli
        xorw  %ax, %ax
        movw  %ax, %ds
        movw  %ax, %es
        movw  %ax, %ss
        /* identity-map the first 2 MiB: PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000 */
        movw  $0x1000, %di
        xorl  %eax, %eax
        movl  $0xc00, %ecx
        cld
        rep stosl
        movl  $0x2003, 0x1000
        movl  $0x3003, 0x2000
        movl  $0x83, 0x3000
        lgdtl %cs:gdtr
        movl  %cr0, %eax
        orl   $1, %eax
        movl  %eax, %cr0
        ljmpl $0x08, $(pm32 + 0xf0000)
        .code32
pm32:   movw  $0x10, %ax
        movw  %ax, %ds
        movw  %ax, %es
        movw  %ax, %ss
        movl  %cr4, %eax
        orl   $0x20, %eax               /* PAE */
        movl  %eax, %cr4
        movl  $0x1000, %eax
        movl  %eax, %cr3
        movl  $0xc0000080, %ecx         /* EFER */
        rdmsr
        orl   $0x100, %eax              /* LME */
        wrmsr
        movl  %cr0, %eax
        orl   $0x80000000, %eax         /* PG */
        movl  %eax, %cr0
        ljmp  $0x18, $(lm64 + 0xf0000)
        .code64
lm64:   movb  $0x2a, %al
        outb  %al, $0xf4
1:      hlt
        jmp   1b
        .p2align 3
gdt:    .quad 0
        .quad 0x00cf9a000000ffff        /* 0x08: 32-bit code */
        .quad 0x00cf92000000ffff        /* 0x10: data */
        .quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
gdtr:   .word gdtr - gdt - 1
        .long gdt + 0xf0000
