/* placeholder so the folder library has a translation unit until its code lands */
typedef int fy_frontend_unit_t;
