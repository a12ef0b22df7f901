/* placeholder so the folder library has a translation unit until its code lands */
typedef int fy_runtime_unit_t;
