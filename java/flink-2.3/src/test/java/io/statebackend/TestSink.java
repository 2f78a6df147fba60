package io.statebackend;

import org.apache.flink.streaming.api.functions.sink.legacy.SinkFunction;

/** The tests' sinks: Flink 2.3's {@code SinkFunction}, by one name on every line. */
public interface TestSink<T> extends SinkFunction<T> {}
