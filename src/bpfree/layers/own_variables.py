"""Saving every variable a layer owns, not only the ones Keras's own (de)serialisation knows about."""


class SavesOwnVariables:
    """Mixin: `save_own_variables` / `load_own_variables` write and read `self._saved_variables()` in
    order (e.g. a Dense's kernel and bias plus a fixed feedback matrix, or a seed generator's state).

    Keras's Dense saves only kernel and bias, and no layer saves its seed generators' states; a
    subclass lists what must travel, and a file with another number of variables is refused by name.
    """

    def _saved_variables(self):
        raise NotImplementedError

    def save_own_variables(self, store):
        for i, variable in enumerate(self._saved_variables()):
            store[str(i)] = variable

    def load_own_variables(self, store):
        variables = self._saved_variables()
        if len(store.keys()) != len(variables):
            raise ValueError(f"Layer {self.name!r} expected {len(variables)} saved variables "
                             f"({', '.join(v.path.rsplit('/', 1)[-1] for v in variables)}), found {len(store.keys())}.")
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])
