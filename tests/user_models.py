"""Model builders a user would write, for the search tests (`arch = "user_models:mlp(width=16)"`)."""

import keras


def mlp(input_shape, classes, width=16, seed=0, dropout=0.0):
    """Flatten → Dense(width, tanh) [→ Dropout] → Dense(width, tanh) added to the first → softmax: a residual MLP."""
    init = keras.initializers.GlorotUniform(seed=seed)
    inputs = keras.Input(input_shape)
    h = keras.layers.Dense(width, activation="tanh", kernel_initializer=init)(keras.layers.Flatten()(inputs))
    if dropout:
        h = keras.layers.Dropout(dropout)(h)
    g = keras.layers.Dense(width, activation="tanh", kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1))(h)
    out = keras.layers.Dense(classes, activation="softmax",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2))(keras.layers.Add()([h, g]))
    return keras.Model(inputs, out)


def unseeded_cnn(input_shape, classes):
    """No seed argument: the search seeds Keras's global generator before calling it."""
    return keras.Sequential([keras.Input(input_shape), keras.layers.Conv2D(4, 3, activation="relu"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(classes, activation="softmax")])


def not_a_model(input_shape, classes):
    return "a string"
