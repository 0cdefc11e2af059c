"""The project's end-to-end test library.

Real processes on this machine, each piece in one module:

- ``environment``: where the patched builds and the test guest are, and
  the patched libvirt's run environment every entry point re-executes in;
- ``libvirt_api``: python3-libvirt on the patched library: connections,
  the event loop, QEMU monitor commands;
- ``host``: an isolated ``virtqemud`` ("host") from the patched build;
- ``storage``: the disks a guest can get (file images, the nbdkit "cloud
  disk" with outages on demand, loop devices);
- ``domxml``: domain XML built and edited with ElementTree;
- ``policies``: the error policies the tests use, in libvirt's XML and
  as QEMU's device properties;
- ``guest``: the TCG guest whose ``/init`` is the I/O probe, and the
  waits on it;
- ``scenarios``: the checks the scenarios share on a guest (an outage
  ridden out, a late error, retry then pause, clean counts);
- ``console``: an incremental reader of a growing log file (the guest's
  serial console, ``virsh event``'s output);
- ``probe``: the probe's log lines (format in ``src/dih-probe.c``);
- ``events``: a watcher of libvirt's io-error events;
- ``migration``: two hosts, the relay between them, TLS certificates;
- ``wait``: waiting for a state with a clear message when it does not come;
- ``process``: the processes the harness starts and must leave none of;
- ``fixtures``: the pytest fixtures of the end-to-end tests.
"""
