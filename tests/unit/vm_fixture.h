/* vm_fixture.h - for the unit tests that drive the interpreter and the
 * inference engine directly (below the public API): a fresh VM with the
 * inference built-ins, after running `src`; the test fails with the
 * diagnostic if the program does not run. */
#ifndef PPL_TEST_VM_FIXTURE_H
#define PPL_TEST_VM_FIXTURE_H
#include <check.h>
#include <string.h>
#include "infer.h"
#include "vm.h"

static rt_vm *vm_running(const char *src) {
    rt_vm *vm = rt_vm_new(NULL);
    ck_assert(vm && inf_register_builtins(vm) == 0);
    rt_source *s = rt_source_new("m.ppl", src, strlen(src));
    ck_assert_msg(rt_run_source(vm, s, false, NULL) == 0, "%s", rt_vm_errmsg(vm));
    rt_source_release(s);
    return vm;
}

#endif
