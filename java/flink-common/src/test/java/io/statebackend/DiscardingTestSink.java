package io.statebackend;

/** A sink that drops what it gets (Flink's DiscardingSink moved between lines). */
final class DiscardingTestSink<T> implements TestSink<T> {
    private static final long serialVersionUID = 1L;

    @Override
    public void invoke(T value, Context context) {}
}
