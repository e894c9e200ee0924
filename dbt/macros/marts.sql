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

)

select * from final

{% endmacro %}
