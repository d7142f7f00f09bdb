/* The module's version: the one place it is written. CMakeLists.txt's
 * project() version must agree (the build checks it), and the apxs build
 * reads it from here. */
#ifndef PEGADM_VERSION_H
#define PEGADM_VERSION_H

#define PEGADM_VERSION "0.1.0"

#endif
