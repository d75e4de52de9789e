"""The control plane: who changes what (actor, audit log), the controller, the control socket
and its clients. The in-process control API itself is `schnitzel.runtime.control`."""
