{#- A split of the requests as training reads it: the ones with at least one labelled candidate. -#}
{% macro labelled_requests_of_split(split) %}

with

requests as (

    select * from {{ ref('int_requests__split') }}
    where split = '{{ split }}'

),

final as (

    select * from requests
    where n_labelled > 0
    {%- if split == 'train' %}
        -- the exploration bucket shuffled these orders on purpose: kept for testing (positions at random), not
        -- trained on
        and trigger_origin != 'explored'
    {%- endif %}

)

select * from final

{% endmacro %}

{#- A split of the recall samples, for the users kept by the same hash sample as the re-ranker's requests. -#}
{% macro recall_samples_of_split(split) %}

with

samples as (

    select * from {{ ref('int_recall_samples') }}
    where split = '{{ split }}'

),

final as (

    select * from samples
    where {{ edgerec.hash_bucket('user_id', var('sample_buckets')) }} < {{ var('sample_rate') }} * {{ var('sample_buckets') }}

)

select * from final

{% endmacro %}
